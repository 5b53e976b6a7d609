"""DATABASE_URL: its form checked at start, its password kept out of every line sqs2pg prints, what asyncpg is
given to connect (connect_kwargs, and what opens a transaction: begin), and two of libpq's parameters that
asyncpg does not read as libpq does made to mean what they mean in libpq: ``connect_timeout`` (asyncpg would send
it to the server as a setting) and ``sslrootcert=system`` (libpq 16: verify the server against the system's
trusted CAs; asyncpg would look for a file named "system").

One rule keeps the password out: every way it can be written in the URL (after the user, ``user:PASSWORD@``,
with or without percent-encoding; a ``password=`` parameter) is found by ``secrets``, ``redact`` replaces
them in the URL, and ``scrub`` replaces them in any text: the log formatter and the command line's error and
``check`` lines pass everything they print through it, so a driver's message quoting the URL leaks nothing
either.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

MASK = "***"
_hidden: set[str] = set()  # every secret of the DATABASE_URLs this process was given (hide())


def for_asyncpg(url: str) -> tuple[str, float | None]:
    """(the URL asyncpg is given, the connect timeout the URL sets or None): libpq's connect_timeout taken out
    and used as the timeout; sslrootcert=system replaced by the system's CA file, with sslmode verify-full
    when the URL names none (as libpq does; problem() refuses a weaker one)."""
    base, question, query = url.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True) if question else []
    if not any(k == "connect_timeout" or (k, v) == ("sslrootcert", "system") for k, v in pairs):
        return url, None
    timeout = next((float(v) for k, v in pairs if k == "connect_timeout" and v.replace(".", "", 1).isdigit()), None)
    pairs = [(k, v) for k, v in pairs if k != "connect_timeout"]
    if ("sslrootcert", "system") in pairs:
        pairs = [(k, system_ca_file() if (k, v) == ("sslrootcert", "system") else v) for k, v in pairs]
        if not any(k == "sslmode" for k, _ in pairs):
            pairs.append(("sslmode", "verify-full"))
    rest = urlencode(pairs)
    return (f"{base}?{rest}" if rest else base), timeout


def system_ca_file() -> str:
    """The file of CAs this system trusts (OpenSSL's default; Debian's ca-certificates in the image)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return candidate
    return paths.openssl_cafile  # absent: asyncpg then says which file it could not read


def secrets(url: str) -> set[str]:
    """Every form of every password in the URL: after the user (up to the last '@', as libpq reads a raw '@'),
    and in a ``password=`` parameter, each as written and percent-decoded."""
    found: set[str] = set()
    userinfo, at, _ = _authority(url)
    if at and ":" in userinfo:
        found.add(userinfo.split(":", 1)[1])
    _, question, query = url.partition("?")
    if question:
        found.update(v for k, v in parse_qsl(query, keep_blank_values=True) if k == "password")
        found.update(v for k, v in (p.partition("=")[::2] for p in query.split("&")) if k == "password")
    return {form for secret in found if secret for form in (secret, unquote(secret))}


def _authority(url: str) -> tuple[str, str, str]:
    """(userinfo, "@", the rest) as libpq reads them: the user and password run to the last '@' before the query
    (a raw '/' or '@' in a password is then still the password's); ("", "", the rest) without one."""
    rest = url.split("://", 1)[-1]
    at = rest.rfind("@", 0, len(rest.split("?", 1)[0]))
    return (rest[:at], "@", rest[at + 1 :]) if at >= 0 else ("", "", rest)


def _hosts(after: str) -> tuple[str, str]:
    """(the hosts, the path and query) of what follows the userinfo."""
    end = min([i for i in (after.find("/"), after.find("?")) if i >= 0] + [len(after)])
    return after[:end], after[end:]


def database_name(url: str) -> str:
    """The database the URL names ('' when it names none: libpq then takes the user's name)."""
    path = _hosts(_authority(url)[2])[1].partition("?")[0]
    return unquote(path.lstrip("/"))


def hide(url: str) -> None:
    """From now on, scrub() hides this URL's passwords too."""
    _hidden.update(secrets(url))


def hide_secret(value: str) -> None:
    """From now on, scrub() hides this value too (an OTLP exporter's header, say)."""
    _hidden.update({value, unquote(value)} - {""})


def scrub(text: str) -> str:
    """``text`` with every password hide() was told of replaced by ***, longest first (one of fewer than 4
    characters is not looked for in free text: it would mask ordinary words; redact() still hides it in a URL)."""
    for secret in sorted(_hidden, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, MASK)
    return text


def redact(url: str) -> str:
    """The URL with its passwords replaced, fit for logs: the user's (up to the last '@') and any ``password=``
    parameter, whatever their length; then scrubbed, for what a malformed URL hides elsewhere."""
    scheme, sep, _ = url.partition("://")
    userinfo, at, after = _authority(url)
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":" + MASK
    hosts, rest = _hosts(after)
    path, question, query = rest.partition("?")
    if question:
        query = "&".join(f"password={MASK}" if p.split("=", 1)[0] == "password" else p for p in query.split("&"))
    netloc = f"{userinfo}@{hosts}" if at else hosts
    hidden = scheme + sep + netloc + path + (question + query if question else "")
    for secret in sorted(secrets(url), key=len, reverse=True):
        if len(secret) >= 4:
            hidden = hidden.replace(secret, MASK)
    return scrub(hidden)


def problem(url: str) -> str | None:
    """What is wrong with a DATABASE_URL's form (scheme, hosts, ports), or None. Several hosts are allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        return f"DATABASE_URL must start with postgresql:// (got {redact(url)!r})"
    userinfo, _, hosts = parts.netloc.rpartition("@")
    if "@" in userinfo:
        return (
            "DATABASE_URL has a raw @ in its user or password: percent-encode it as %40 (a password containing "
            "@ : / ? # must be percent-encoded)"
        )
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
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    if params.get("sslrootcert") == "system" and params.get("sslmode", "verify-full") != "verify-full":
        return (
            f"DATABASE_URL has sslrootcert=system with sslmode={params['sslmode']}: sslrootcert=system checks the "
            "server's certificate and name against the system's CAs, so use sslmode=verify-full (or leave sslmode out)"
        )
    return None


def server_timeouts(statement_timeout_s: float) -> dict[str, str]:
    """The server gives up too, so a hung statement does not hold locks after sqs2pg has moved on."""
    return {
        "statement_timeout": str(int(statement_timeout_s * 1000)),
        "idle_in_transaction_session_timeout": str(int(statement_timeout_s * 2000)),
    }


def begin(statement_timeout_s: float, pooler: str) -> str:
    """What opens a transaction: BEGIN, read committed whatever the server's default (a key's claim looks for its
    record in a fresh snapshot after taking the key's lock: migration 0005), and behind a transaction pooler
    (SQS2PG_DB_POOLER=transaction) the server's timeouts with it, in one simple query (no round trip more)."""
    opening = "BEGIN ISOLATION LEVEL READ COMMITTED"
    if pooler == "none":
        return opening
    return f"{opening}; " + "; ".join(f"SET LOCAL {k} = {v}" for k, v in server_timeouts(statement_timeout_s).items())


def connect_kwargs(url: str, connect_timeout_s: float, statement_timeout_s: float, pooler: str) -> dict[str, Any]:
    """Arguments for asyncpg.connect / create_pool. application_name is a parameter every pooler passes on; the
    timeouts are not (PgBouncer refuses them at connect), so behind a transaction pooler begin() sets them, and
    no prepared statement is kept (it would live on one server connection)."""
    dsn, url_timeout = for_asyncpg(url)
    kwargs: dict[str, Any] = {
        "dsn": dsn,
        "timeout": url_timeout or connect_timeout_s,
        "command_timeout": statement_timeout_s,
        "server_settings": {
            "application_name": "sqs2pg",
            **(server_timeouts(statement_timeout_s) if pooler == "none" else {}),
        },
    }
    if pooler == "transaction":
        kwargs["statement_cache_size"] = 0
    if "target_session_attrs" not in url:
        kwargs["target_session_attrs"] = "read-write"  # with several hosts in DATABASE_URL, only the writer will do
    return kwargs
