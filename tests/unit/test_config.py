from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from sqs2pg import database_url
from sqs2pg.config import ConfigError, Settings, load
from sqs2pg.database_url import database_name, redact

BASE = {
    "DATABASE_URL": "postgresql://app:s3cret@db:5432/app",
    "SQS_QUEUE_URLS": "https://sqs.eu-west-1.amazonaws.com/123456789012/orders.fifo",
}


def test_defaults_and_region_from_queue_url() -> None:
    s = load(BASE)
    assert s.region == "eu-west-1"
    assert (s.http_port, s.receive_wait_s, s.shutdown_grace_s, s.idempotency_retention_days) == (8080, 5, 20.0, 7.0)
    assert s.handler == "sqs2pg.handler:insert_event"
    assert s.pool_size == s.max_concurrent_groups + 2


def test_knobs_are_parsed_with_units_and_settings_are_frozen() -> None:
    s = load({**BASE, "SQS2PG_RECEIVE_WAIT_S": "5", "SQS2PG_RETRY_BASE_S": "0.5", "HTTP_PORT": "9000"})
    assert (s.receive_wait_s, s.retry_base_s, s.http_port) == (5, 0.5, 9000)
    with pytest.raises(AttributeError):
        s.http_port = 1  # type: ignore[misc]
    assert isinstance(s, Settings)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DATABASE_URL": ""}, "DATABASE_URL is required"),
        ({"DATABASE_URL": "mysql://x/y"}, "must start with postgresql://"),
        ({"SQS_QUEUE_URLS": "https://sqs.eu-west-1.amazonaws.com/1/orders"}, "not the URL of a FIFO queue"),
        ({"SQS2PG_RECEIVE_WAIT_S": "30"}, "SQS2PG_RECEIVE_WAIT_S='30' is out of range"),
        ({"SQS2PG_RECEIVE_WAIT_S": "soon"}, "is not a valid int"),
        ({"SQS2PG_TRANSACTION_TIMEOUT_S": "nan"}, "SQS2PG_TRANSACTION_TIMEOUT_S='nan' is not a finite number"),
        ({"SQS2PG_SHUTDOWN_GRACE_S": "NaN"}, "SQS2PG_SHUTDOWN_GRACE_S='NaN' is not a finite number"),
        ({"SQS2PG_RECIEVE_WAIT_S": "5"}, "unknown setting(s): SQS2PG_RECIEVE_WAIT_S"),
        ({"HANDLER": "not a path"}, "must look like package.module:function"),
        ({"HTTP_PORT": "70000"}, "HTTP_PORT='70000' is out of range"),
        ({"SQS2PG_LOG_LEVEL": "chatty"}, "is not DEBUG, INFO, WARNING or ERROR"),
        ({"SQS2PG_RETRY_BASE_S": "10", "SQS2PG_RETRY_MAX_S": "5"}, "below SQS2PG_RETRY_BASE_S"),
    ],
)
def test_malformed_values_are_rejected_with_a_clear_message(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load({**BASE, **env})
    assert expected in str(info.value)


def test_an_unknown_setting_is_told_the_one_it_most_likely_meant_and_only_that() -> None:
    def told(name: str) -> str:
        with pytest.raises(ConfigError) as info:
            load({**BASE, name: "1"})
        return str(info.value)

    assert "SQS2PG_MAX_CONCURENT_GROUPS (did you mean SQS2PG_MAX_CONCURRENT_GROUPS?)" in told(
        "SQS2PG_MAX_CONCURENT_GROUPS"
    )
    assert "(did you mean SQS2PG_RECEIVE_WAIT_S?)" in told("SQS2PG_RECIEVE_WAIT_S")
    # sharing the SQS2PG_ prefix is no resemblance
    assert told("SQS2PG_FOO").endswith("unknown setting(s): SQS2PG_FOO")


def test_region_is_required_when_it_cannot_be_inferred() -> None:
    with pytest.raises(ConfigError, match="AWS_REGION is required"):
        load({**BASE, "SQS_QUEUE_URLS": "http://localhost:4566/000000000000/q.fifo"})
    assert (
        load({**BASE, "SQS_QUEUE_URLS": "http://localhost:4566/0/q.fifo", "AWS_REGION": "us-east-1"}).region
        == "us-east-1"
    )


def test_passwords_never_reach_messages() -> None:
    assert redact("postgresql://app:s3cret@db:5432/app") == "postgresql://app:***@db:5432/app"
    with pytest.raises(ConfigError) as info:
        load({**BASE, "DATABASE_URL": "mysql://app:s3cret@db/app"})
    assert "s3cret" not in str(info.value)
    # A raw '#' splits the URL inside the password: the piece before it would parse as a port.
    with pytest.raises(ConfigError) as info:
        load({**BASE, "DATABASE_URL": "postgresql://app:s3c#ret@db/app"})
    assert "s3c" not in str(info.value) and "percent-encoded" in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app@db1:5432,db2:5433/app",
        "postgresql://app:p%40ss@[::1]:5432/app?sslmode=require",
        "postgresql:///app?host=/var/run/postgresql",
        "postgres://app@db/app",
    ],
)
def test_valid_database_urls_are_accepted(url: str) -> None:
    assert load({**BASE, "DATABASE_URL": url}).database_url == url


def test_migrations_need_only_the_database() -> None:
    s = load({"DATABASE_URL": BASE["DATABASE_URL"]}, require_queues=False)
    assert s.queue_urls == () and s.database_url == BASE["DATABASE_URL"]
    with pytest.raises(ConfigError, match="SQS_QUEUE_URLS is required"):
        load({"DATABASE_URL": BASE["DATABASE_URL"]})


def test_libpq_connect_timeout_in_the_url_becomes_the_connect_timeout() -> None:
    """asyncpg would send connect_timeout to the server as a setting, and the server would refuse it."""
    kwargs = load(
        {**BASE, "DATABASE_URL": "postgresql://app@db/app?connect_timeout=3&sslmode=require"}
    ).connect_kwargs()
    assert kwargs["dsn"] == "postgresql://app@db/app?sslmode=require" and kwargs["timeout"] == 3.0
    kwargs = load({**BASE, "DATABASE_URL": "postgresql://app@db/app?connect_timeout=3"}).connect_kwargs()
    assert kwargs["dsn"] == "postgresql://app@db/app" and kwargs["timeout"] == 3.0
    assert load(BASE).connect_kwargs()["timeout"] == 5.0


def test_sslrootcert_system_means_the_systems_cas_and_verify_full_as_in_libpq() -> None:
    ca = database_url.system_ca_file()
    assert Path(ca).is_file()
    dsn = load({**BASE, "DATABASE_URL": "postgresql://app@db/app?sslrootcert=system"}).connect_kwargs()["dsn"]
    assert parse_qs(urlsplit(dsn).query) == {"sslrootcert": [ca], "sslmode": ["verify-full"]}
    dsn = load(
        {**BASE, "DATABASE_URL": "postgresql://app@db/app?sslmode=verify-full&sslrootcert=system&connect_timeout=2"}
    ).connect_kwargs()["dsn"]
    assert parse_qs(urlsplit(dsn).query) == {"sslrootcert": [ca], "sslmode": ["verify-full"]}
    with pytest.raises(ConfigError, match="use sslmode=verify-full"):
        load({**BASE, "DATABASE_URL": "postgresql://app@db/app?sslmode=require&sslrootcert=system"})
    # a file stays a file
    dsn = load({**BASE, "DATABASE_URL": "postgresql://app@db/app?sslrootcert=/ca.pem"}).connect_kwargs()["dsn"]
    assert dsn == "postgresql://app@db/app?sslrootcert=/ca.pem"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/app", "postgresql://app:***@db:5432/app"),
        (
            "postgresql://app@db/app?sslmode=require&password=Secret123",
            "postgresql://app@db/app?sslmode=require&password=***",
        ),
        ("postgresql://app:p%40ss%2Fw0rd@db/app", "postgresql://app:***@db/app"),
        ("postgresql://app:S3cr@t@db/app", "postgresql://app:***@db/app"),  # a raw @: up to the last one
        ("postgresql://app:ab@db/app", "postgresql://app:***@db/app"),  # however short
        ("postgresql://h1:5432,h2:5432/app", "postgresql://h1:5432,h2:5432/app"),
    ],
)
def test_every_form_of_a_password_is_redacted(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_a_password_is_scrubbed_from_any_line_once_the_url_was_loaded() -> None:
    from sqs2pg.database_url import scrub

    load({**BASE, "DATABASE_URL": "postgresql://app@db/app?password=Hunter2-xyz"})
    assert scrub('asyncpg: invalid DSN "postgresql://app@db/app?password=Hunter2-xyz"') == (
        'asyncpg: invalid DSN "postgresql://app@db/app?password=***"'
    )


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("postgresql://app:s3cret@db1:5432,db2:5432/orders?sslmode=require", "orders"),  # several hosts
        ("postgresql://app:a/b@db/app", "app"),  # a raw '/' in the password is the password's
        ("postgresql://app@db/my%20db", "my db"),
        ("postgresql://db:5432", ""),  # none named: libpq takes the user's name
    ],
)
def test_the_database_a_url_names(url: str, name: str) -> None:
    """(the name traces give their transaction spans)"""
    assert database_name(url) == name
