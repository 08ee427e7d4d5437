"""Settings: one declaration per variable, validated at start-up with messages that name it."""

from __future__ import annotations

import pytest

from services.errors import ConfigError
from services.settings import Settings, declared

FIXED_NAMES = {
    "PORT", "REDIS_URL", "SALESFORCE_LOGIN_URL", "SALESFORCE_CLIENT_ID", "SALESFORCE_CLIENT_SECRET",
    "SALESFORCE_USERNAME", "SALESFORCE_PRIVATE_KEY", "SALESFORCE_API_VERSION", "OFFLOAD_ORG_IDS",
    "OFFLOAD_CALLOUT_SECRETS", "OFFLOAD_API_KEYS", "OFFLOAD_COMPLETION_EVENT", "OFFLOAD_DASHBOARD_PASSWORD",
    # Heroku AppLink's names: the mesh reads APP_PORT, the add-on sets the HEROKU_APPLINK_* pair.
    "APP_PORT", "HEROKU_APPLINK_API_URL", "HEROKU_APPLINK_TOKEN", "HEROKU_APP_ID",
}


def test_every_fixed_name_is_declared_and_the_rest_are_prefixed() -> None:
    """The names users rely on exist; anything more starts with OFFLOAD_."""
    names = {d["name"] for d in declared()}
    assert FIXED_NAMES <= names
    assert all(n in FIXED_NAMES or n.startswith("OFFLOAD_") for n in names)
    assert all(d["description"] for d in declared())


@pytest.mark.parametrize(("raw", "port"), [("", None), ("3000", 3000), (" 8080 ", 8080)])
def test_app_port_switches_applink_on(raw: str, port: int | None) -> None:
    assert Settings.from_env({"APP_PORT": raw}).app_port == port


@pytest.mark.parametrize("raw", ["0", "70000", "three"])
def test_a_bad_app_port_names_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="APP_PORT"):
        Settings.from_env({"APP_PORT": raw})


def test_defaults() -> None:
    """An empty environment gives working defaults."""
    s = Settings.from_env({})
    assert s.port == 5000
    assert s.salesforce_login_url == "https://login.salesforce.com"
    assert s.redis_url.startswith("redis://")
    assert s.org_ids == () and s.callout_secrets == ()
    assert s.salesforce_auth_mode is None


def test_org_ids_accept_15_and_18_characters_and_normalize() -> None:
    s = Settings.from_env({"OFFLOAD_ORG_IDS": "00D5g000000Xk2P, 00D5g000000Xk2PEAS"})
    assert s.org_ids == ("00D5g000000Xk2PEAS", "00D5g000000Xk2PEAS")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "eighty"),
        ("PORT", "-1"),
        ("REDIS_URL", "http://localhost"),
        ("SALESFORCE_LOGIN_URL", "http://login.salesforce.com"),
        ("SALESFORCE_API_VERSION", "v66"),
        ("OFFLOAD_ORG_IDS", "001000000000001"),
        ("OFFLOAD_MAX_PIXELS", "lots"),
        ("OFFLOAD_LOG_FORMAT", "xml"),
    ],
)
def test_malformed_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_web_role_requires_a_way_to_authenticate_and_an_org() -> None:
    with pytest.raises(ConfigError, match="OFFLOAD_CALLOUT_SECRETS"):
        Settings.from_env({"OFFLOAD_ORG_IDS": "00D5g000000Xk2P"}).require("web")
    with pytest.raises(ConfigError, match="OFFLOAD_ORG_IDS"):
        Settings.from_env({"OFFLOAD_API_KEYS": "k"}).require("web")
    with pytest.raises(ConfigError, match="OFFLOAD_OUTBOUND_TOKENS"):
        Settings.from_env({"OFFLOAD_API_KEYS": "k", "OFFLOAD_ORG_IDS": "00D5g000000Xk2P"}).require("web")
    Settings.from_env({"OFFLOAD_API_KEYS": "k", "OFFLOAD_ORG_IDS": "00D5g000000Xk2P",
                       "OFFLOAD_OUTBOUND_TOKENS": "a-long-random-token-1234"}).require("web")


@pytest.mark.parametrize("raw", ["short", "has space inside-0123456", "has&ampersand-0123456789", "pct%20-0123456789"])
def test_outbound_tokens_must_be_long_and_url_safe(raw: str) -> None:
    """A token lives in a URL query string that Salesforce sends verbatim: no short or escaped values."""
    with pytest.raises(ConfigError, match="OFFLOAD_OUTBOUND_TOKENS"):
        Settings.from_env({"OFFLOAD_OUTBOUND_TOKENS": raw})
    two = Settings.from_env({"OFFLOAD_OUTBOUND_TOKENS": "old-token-0123456789, new-token-0123456789"})
    assert two.outbound_tokens == ("old-token-0123456789", "new-token-0123456789")


def test_worker_role_refuses_half_configured_credentials() -> None:
    with pytest.raises(ConfigError, match="SALESFORCE_CLIENT_SECRET"):
        Settings.from_env({"SALESFORCE_CLIENT_ID": "abc"}).require("worker")
    with pytest.raises(ConfigError, match="SALESFORCE_CLIENT_ID"):
        Settings.from_env({"SALESFORCE_CLIENT_SECRET": "abc"}).require("worker")
    Settings.from_env({}).require("worker")  # no credentials: allowed (session-id fallback)
    ok = Settings.from_env({"SALESFORCE_CLIENT_ID": "a", "SALESFORCE_CLIENT_SECRET": "b"})
    assert ok.salesforce_auth_mode == "client_credentials"
    jwt = Settings.from_env({"SALESFORCE_CLIENT_ID": "a", "SALESFORCE_USERNAME": "u", "SALESFORCE_PRIVATE_KEY": "k"})
    assert jwt.salesforce_auth_mode == "jwt_bearer"


def test_wrong_image_variants_stop_start_up_naming_the_variable() -> None:
    """A bad OFFLOAD_IMAGE_VARIANTS used to pass start-up and fail (and retry) every job."""
    from services.errors import ConfigError

    with pytest.raises(ConfigError, match="OFFLOAD_IMAGE_VARIANTS is invalid: 'large:huge:gif'"):
        Settings.from_env({"OFFLOAD_IMAGE_VARIANTS": "large:huge:gif"})


def test_a_worker_with_wrong_variants_exits_before_taking_a_job(redis_url: str) -> None:
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "REDIS_URL": redis_url, "OFFLOAD_IMAGE_VARIANTS": "large:huge:gif"}
    proc = subprocess.run([sys.executable, "-m", "workers", "--burst"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 2 and "OFFLOAD_IMAGE_VARIANTS is invalid" in proc.stderr


@pytest.mark.parametrize("login_url", ["https://login.salesforce.com", "https://test.salesforce.com"])
def test_client_credentials_on_a_shared_login_host_stop_the_worker(login_url: str) -> None:
    """Salesforce answers invalid_grant "request not supported on this domain" there, on every job."""
    settings = Settings.from_env({"SALESFORCE_CLIENT_ID": "id", "SALESFORCE_CLIENT_SECRET": "secret",
                                  "SALESFORCE_LOGIN_URL": login_url})
    with pytest.raises(ConfigError, match=r"SALESFORCE_LOGIN_URL=https://<mydomain>\.my\.salesforce\.com"):
        settings.require("worker")


def test_client_credentials_on_a_my_domain_and_jwt_on_login_are_fine() -> None:
    Settings.from_env({"SALESFORCE_CLIENT_ID": "id", "SALESFORCE_CLIENT_SECRET": "secret",
                       "SALESFORCE_LOGIN_URL": "https://acme.my.salesforce.com"}).require("worker")
    Settings.from_env({"SALESFORCE_CLIENT_ID": "id", "SALESFORCE_USERNAME": "u@example.com",
                       "SALESFORCE_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----",
                       "SALESFORCE_LOGIN_URL": "https://login.salesforce.com"}).require("worker")


def test_offload_record_types_default_refuses_only_users() -> None:
    types = Settings.from_env({}).record_types
    assert not types.allows("User", None) and not types.allows(None, "0055g00000AbCdEAAV")  # by name, by prefix
    assert types.allows("Account", None) and types.allows(None, "a0B5g00000ZzZzZEAV")


def test_offload_record_types_lists_names_and_key_prefixes() -> None:
    types = Settings.from_env({"OFFLOAD_RECORD_TYPES": "Property__c, a0B"}).record_types
    assert types.allows("property__c", None) and types.allows(None, "a0B5g00000ZzZzZEAV")
    assert not types.allows("Account", "0015g00000QwErTAAV") and not types.allows(None, "0015g00000QwErTAAV")
    assert types.allows("ContentVersion", "0685g00000XyZaBAAV")  # a file names itself
    assert Settings.from_env({"OFFLOAD_RECORD_TYPES": "*"}).record_types.allows("User", None)
    with pytest.raises(ConfigError, match="OFFLOAD_RECORD_TYPES"):
        Settings.from_env({"OFFLOAD_RECORD_TYPES": "Account; DROP"})


@pytest.mark.parametrize(("memory_mb", "cpus", "expected"), [
    (512, 8, 1),     # Standard-1X: the host's 8 CPUs, 512 MB
    (1024, 8, 2),    # Standard-2X
    (2560, 2, 2),    # Performance-M: 2 dedicated cores
    (14336, 8, 8),   # Performance-L
    (300, 4, 1),     # less than one budget still runs one
])
def test_worker_concurrency_auto_is_one_per_cpu_as_the_memory_holds(
    monkeypatch: pytest.MonkeyPatch, memory_mb: int, cpus: int, expected: int
) -> None:
    from services import dyno

    monkeypatch.setattr(dyno, "memory_limit_bytes", lambda: memory_mb * 1024 * 1024)
    monkeypatch.setattr(dyno, "cpu_count", lambda: cpus)
    assert Settings.from_env({}).worker_concurrency == expected
    assert Settings.from_env({"OFFLOAD_WORKER_CONCURRENCY": "AUTO"}).worker_concurrency == expected
    assert Settings.from_env({"OFFLOAD_WORKER_CONCURRENCY": "3"}).worker_concurrency == 3


def test_worker_concurrency_refuses_zero() -> None:
    with pytest.raises(ConfigError, match="OFFLOAD_WORKER_CONCURRENCY"):
        Settings.from_env({"OFFLOAD_WORKER_CONCURRENCY": "0"})
