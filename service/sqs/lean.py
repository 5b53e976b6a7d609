"""The hot SQS calls (ReceiveMessage, DeleteMessageBatch, ChangeMessageVisibilityBatch) sent over aiohttp in
SQS's JSON protocol, without botocore's per-call machinery.

Why by hand: through aiobotocore each of these calls cost about 2.3 ms of CPU (user agent built twice per
call, request objects, event hooks, a full model-driven parse of every receive), about half of the service's
CPU per message. Here a call is: json.dumps of a fixed shape, a signature, one POST, json.loads.

What stays in well-kept libraries, deliberately: credentials (the aiobotocore session's provider chain, with
its refreshing providers: environment, profiles, web identity, ECS container credentials, IMDS), SigV4
signing (botocore's SigV4Auth), the retry decision, backoff and retry quota (botocore's standard mode, the
same rules the SDK applies), the parsing of error responses (botocore's JSON parser, so that a failure is the
same ClientError the aiobotocore client raises and errors.py classifies it unchanged), and the endpoint and
region (resolved once by the aiobotocore client). SQS2PG_SQS_CLIENT=aioboto3 switches back to the SDK for
these calls too.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from typing import Any

import aiohttp
import botocore.exceptions
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.model import ServiceModel
from botocore.parsers import JSONParser
from botocore.retries import quota, standard

HOT_OPERATIONS = {
    "receive_message": "ReceiveMessage",
    "delete_message_batch": "DeleteMessageBatch",
    "change_message_visibility_batch": "ChangeMessageVisibilityBatch",
}


class _Status:
    """What botocore's retry rules read of an HTTP response."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


class SqsJsonClient:
    def __init__(
        self,
        endpoint_url: str,
        region: str,
        credentials: Any,
        service_model: ServiceModel,
        *,
        user_agent: str,
        connect_timeout_s: float,
        read_timeout_s: float,
        max_attempts: int,
        max_connections: int,
        ca_bundle: str | None,
    ) -> None:
        self._url = endpoint_url.rstrip("/") + "/"
        self._region = region
        self._credentials = credentials  # aiobotocore's (refreshing) credentials, shared with the SDK client
        self._service_model = service_model
        self._user_agent = user_agent
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._max_connections = max_connections
        self._ca_bundle = ca_bundle
        self._policy = standard.RetryPolicy(
            retry_checker=standard.StandardRetryConditions(max_attempts=max_attempts),
            retry_backoff=standard.ExponentialBackoff(),
        )
        self._quota = standard.RetryQuotaChecker(quota.RetryQuota())
        self._error_parser = JSONParser()
        self._http: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        tls: ssl.SSLContext | bool = False
        if self._url.startswith("https:"):
            tls = ssl.create_default_context(cafile=self._ca_bundle)
        connector = aiohttp.TCPConnector(limit=self._max_connections, ssl=tls, keepalive_timeout=60)
        self._http = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def call(self, operation: str, params: dict[str, Any], read_timeout_s: float | None = None) -> dict[str, Any]:
        """One SQS call; retried as botocore's standard mode would; a failure raises what aiobotocore raises."""
        assert self._http is not None, "open() was not called"
        name = HOT_OPERATIONS[operation]
        body = json.dumps(params, separators=(",", ":")).encode()
        timeout = aiohttp.ClientTimeout(
            sock_connect=self._connect_timeout_s, sock_read=read_timeout_s or self._read_timeout_s
        )
        request_context: dict[str, Any] = {}
        attempt = 0
        while True:
            attempt += 1
            headers = await self._signed_headers(name, body)
            caught: Exception | None = None
            parsed: dict[str, Any] | None = None
            status = 0
            try:
                async with self._http.post(self._url, data=body, headers=headers, timeout=timeout) as response:
                    status = response.status
                    raw = await response.read()
                    if status < 300:
                        self._quota.release_retry_quota(request_context, _Status(status))
                        return _normalise(operation, json.loads(raw) if raw else {})
                    parsed = self._error_parser.parse(
                        {"status_code": status, "headers": response.headers, "body": raw},
                        self._service_model.operation_model(name).output_shape,
                    )
            except TimeoutError:
                caught = botocore.exceptions.ReadTimeoutError(endpoint_url=self._url)
            except aiohttp.ClientConnectorError as exc:
                caught = botocore.exceptions.EndpointConnectionError(endpoint_url=self._url, error=exc)
            except (aiohttp.ClientError, ConnectionError) as exc:
                caught = botocore.exceptions.ConnectionClosedError(endpoint_url=self._url, error=exc)
            context = standard.RetryContext(
                attempt_number=attempt,
                operation_model=self._service_model.operation_model(name),
                parsed_response=parsed,
                http_response=_Status(status) if status else None,
                caught_exception=caught,
                request_context=request_context,
            )
            if self._policy.should_retry(context) and self._quota.acquire_retry_quota(context):
                await asyncio.sleep(self._policy.compute_retry_delay(context))
                continue
            if caught is not None:
                raise caught
            assert parsed is not None
            raise botocore.exceptions.ClientError(parsed, name)

    async def _signed_headers(self, target: str, body: bytes) -> dict[str, str]:
        if self._credentials is None:
            raise botocore.exceptions.NoCredentialsError()
        frozen = await self._credentials.get_frozen_credentials()  # refreshes when the provider says so
        request = AWSRequest(
            method="POST",
            url=self._url,
            data=body,
            headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": f"AmazonSQS.{target}",
                # SQS is query-compatible: errors then carry the same codes the SDK's query clients see.
                "x-amzn-query-mode": "true",
                "User-Agent": self._user_agent,
            },
        )
        SigV4Auth(frozen, "sqs", self._region).add_auth(request)
        return dict(request.headers.items())


def _normalise(operation: str, response: dict[str, Any]) -> dict[str, Any]:
    """What botocore's parser would have changed: binary message attributes arrive base64-encoded."""
    if operation == "receive_message":
        for message in response.get("Messages", ()):
            for attribute in (message.get("MessageAttributes") or {}).values():
                if "BinaryValue" in attribute:
                    attribute["BinaryValue"] = base64.b64decode(attribute["BinaryValue"])
    return response
