"""DATABASE_URL: its form checked at start, its password kept out of every line sqs2pg prints, and libpq's
connect_timeout taken out of it (asyncpg would send it to the server as a setting)."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit


def split_connect_timeout(url: str) -> tuple[str, float | None]:
    """libpq's connect_timeout URL parameter, which asyncpg would send to the server as a setting (and the
    server reject): taken out of the URL and used as the connect timeout."""
    base, question, query = url.partition("?")
    if not question or "connect_timeout" not in query:
        return url, None
    pairs = parse_qsl(query, keep_blank_values=True)
    timeout = next((float(v) for k, v in pairs if k == "connect_timeout" and v.replace(".", "", 1).isdigit()), None)
    rest = urlencode([(k, v) for k, v in pairs if k != "connect_timeout"])
    return (f"{base}?{rest}" if rest else base), timeout


def redact(url: str) -> str:
    """The URL with any password replaced, fit for logs."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def problem(url: str) -> str | None:
    """What is wrong with a DATABASE_URL's form (scheme, hosts, ports), or None. Several hosts are allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        return f"DATABASE_URL must start with postgresql:// (got {redact(url)!r})"
    hosts = parts.netloc.rpartition("@")[2]
    for host in hosts.split(","):
        _, colon, port = host.rpartition(":") if not host.endswith("]") else ("", "", "")
        if colon and port and not port.isdigit():
            # Never echoed: with a raw '#', '?' or '/' in the password, what is parsed as the port is a
            # piece of the password.
            return (
                "DATABASE_URL has an invalid host:port (a password containing @ : / ? # must be "
                "percent-encoded, e.g. %40 for @)"
            )
        if colon and port and not 1 <= int(port) <= 65535:
            return f"DATABASE_URL has port {port}: a port is a number from 1 to 65535"
    return None
