"""Test only: moto's server, plus the few calls the Terraform module makes that moto 5.x lacks.

Started by deploy/terraform/tests/lib.sh (scripts/check-terraform.sh, scripts/terraform-moto-apply.sh) with
moto_server's own arguments (-H HOST -p PORT). Without these patches the AWS provider waits forever:

- SQS ``RedriveAllowPolicy`` (aws_sqs_queue_redrive_allow_policy): moto stores the attribute on
  SetQueueAttributes but refuses it as an attribute name on GetQueueAttributes and leaves it out of "All", so
  the provider never sees the value it set and retries until its timeout.
- Application Auto Scaling ``TagResource``, ``UntagResource`` and ``ListTagsForResource`` (the provider tags
  aws_appautoscaling_target with default_tags and reads the tags back): moto has no such actions, and the
  provider retries the server error.

Each patch is the smallest that lets the provider read back what it wrote; nothing here is used outside the
Terraform checks.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from moto.applicationautoscaling.responses import ApplicationAutoScalingResponse
from moto.server import main
from moto.sqs.models import Queue


def _patch_sqs_redrive_allow_policy() -> None:
    if "RedriveAllowPolicy" in Queue.BASE_ATTRIBUTES:
        return  # a moto that has it
    Queue.BASE_ATTRIBUTES = [*Queue.BASE_ATTRIBUTES, "RedriveAllowPolicy"]
    # Read through getattr for every base attribute: a queue that never had one set reports None, as for Policy.
    Queue.redrive_allow_policy = None  # type: ignore[attr-defined]
    attributes = Queue.attributes

    def without_an_empty_redrive_allow_policy(self: Queue) -> dict[str, Any]:
        # SetQueueAttributes with "" removes the attribute in SQS (the provider's destroy does that, then waits
        # until the attribute is gone); moto would keep "" and report it.
        result: dict[str, Any] = attributes.fget(self)  # type: ignore[attr-defined]
        if not result.get("RedriveAllowPolicy"):
            result.pop("RedriveAllowPolicy", None)
        return result

    Queue.attributes = property(without_an_empty_redrive_allow_policy)  # type: ignore[assignment,method-assign]


# Tags of Application Auto Scaling resources, by (account, region, ARN): moto keeps none.
_TAGS: dict[tuple[str, str, str], dict[str, str]] = {}


def _tags_of(response: ApplicationAutoScalingResponse, arn: str) -> dict[str, str]:
    return _TAGS.setdefault((response.current_account, response.region, arn), {})


def _tag_resource(self: ApplicationAutoScalingResponse) -> str:
    _tags_of(self, self._get_param("ResourceARN")).update(self._get_param("Tags") or {})
    return json.dumps({})


def _untag_resource(self: ApplicationAutoScalingResponse) -> str:
    tags = _tags_of(self, self._get_param("ResourceARN"))
    for key in self._get_param("TagKeys") or []:
        tags.pop(key, None)
    return json.dumps({})


def _list_tags_for_resource(self: ApplicationAutoScalingResponse) -> str:
    return json.dumps({"Tags": _tags_of(self, self._get_param("ResourceARN"))})


def _patch_appautoscaling_tags() -> None:
    if hasattr(ApplicationAutoScalingResponse, "list_tags_for_resource"):
        return  # a moto that has them
    register = ApplicationAutoScalingResponse.register_scalable_target

    def register_scalable_target(self: ApplicationAutoScalingResponse) -> str:
        # RegisterScalableTarget carries the initial tags; keep them under the target's ARN.
        out = register(self)
        tags: dict[str, Any] = self._get_param("Tags") or {}
        if tags:
            _tags_of(self, json.loads(out)["ScalableTargetARN"]).update(tags)
        return out

    ApplicationAutoScalingResponse.register_scalable_target = register_scalable_target  # type: ignore[method-assign]
    ApplicationAutoScalingResponse.tag_resource = _tag_resource  # type: ignore[attr-defined]
    ApplicationAutoScalingResponse.untag_resource = _untag_resource  # type: ignore[attr-defined]
    ApplicationAutoScalingResponse.list_tags_for_resource = _list_tags_for_resource  # type: ignore[attr-defined]


if __name__ == "__main__":
    _patch_sqs_redrive_allow_policy()
    _patch_appautoscaling_tags()
    main(sys.argv[1:])
