"""Logging in and calling Salesforce the way workers do, against the emulator over HTTPS."""

from __future__ import annotations

import pytest
import redis

from devkit.org.faults import FaultRule
from services.errors import SalesforcePermanentError, SalesforceTransientError
from services.salesforce.client import TimeoutSession, session_host_allowed
from services.salesforce.tokens import SharedToken, fetch_token, jwt_audience
from services.settings import Settings
from tests.support.keys import jwt_keypair


def _session(org) -> TimeoutSession:
    return TimeoutSession(5, org.ca_bundle)


def test_client_credentials_login(org, worker_settings: Settings) -> None:
    token = fetch_token(worker_settings, _session(org))
    assert token.instance_url == org.base_url and token.access_token


def test_jwt_bearer_login_with_the_apps_certificate(org, worker_settings: Settings) -> None:
    key_pem, cert_pem = jwt_keypair("offload-worker")
    key_pem = key_pem.decode()
    org.state.config.jwt_cert_pem = cert_pem
    settings = worker_settings.replace(salesforce_client_secret="", salesforce_username=org.username,
                                       salesforce_private_key=key_pem.replace("\n", "\\n"))
    assert settings.salesforce_auth_mode == "jwt_bearer"
    token = fetch_token(settings, _session(org))
    assert token.instance_url == org.base_url


def test_a_wrong_secret_is_a_permanent_error_an_admin_can_read(org, worker_settings: Settings) -> None:
    with pytest.raises(SalesforcePermanentError) as caught:
        fetch_token(worker_settings.replace(salesforce_client_secret="wrong"), _session(org))
    assert caught.value.code == "INVALID_CLIENT" and "SALESFORCE_CLIENT_ID" in caught.value.message


def test_an_unreachable_login_host_is_transient(worker_settings: Settings) -> None:
    settings = worker_settings.replace(salesforce_login_url="https://127.0.0.1:1")
    with pytest.raises(SalesforceTransientError):
        fetch_token(settings, TimeoutSession(1))


def test_workers_share_one_login_through_redis(org, worker_settings: Settings, redis_conn: redis.Redis) -> None:
    """Two worker processes' token sources: the second reuses the first's token, a refresh replaces it."""
    first = SharedToken(worker_settings, redis_conn, _session(org))
    second = SharedToken(worker_settings, redis_conn, _session(org))
    issued = len(org.state.tokens.all())
    token = first(False)
    assert second(False) == token
    assert len(org.state.tokens.all()) == issued + 1, "one login served both processes"
    refreshed = second(True)
    assert refreshed != token and first(False) == refreshed


def test_a_busy_login_is_transient(org, worker_settings: Settings) -> None:
    org.state.faults.add(FaultRule(pattern="/services/oauth2/token", error="SERVER_UNAVAILABLE", count=1))
    with pytest.raises(SalesforceTransientError):
        fetch_token(worker_settings, _session(org))


def test_jwt_audience_follows_the_login_host() -> None:
    assert jwt_audience("https://login.salesforce.com") == "https://login.salesforce.com"
    assert jwt_audience("https://acme.my.salesforce.com") == "https://login.salesforce.com"
    assert jwt_audience("https://test.salesforce.com") == "https://test.salesforce.com"
    assert jwt_audience("https://acme--uat.sandbox.my.salesforce.com") == "https://test.salesforce.com"
    assert jwt_audience("https://127.0.0.1:8443") == "https://127.0.0.1:8443"


@pytest.mark.parametrize("login_url", [
    "https://acme--uat.my.salesforce.com",  # a sandbox My Domain before enhanced domains
    "https://acme--uat.sandbox.my.salesforce.com",
    "https://power-dream-1234-dev-ed.scratch.my.salesforce.com",  # a scratch org
    "https://cs42.salesforce.com",
    "https://acme.cs42.my.salesforce.com",
])
def test_sandbox_and_scratch_hosts_get_the_test_audience(login_url: str) -> None:
    """They used to get login.salesforce.com, which Salesforce refuses for a sandbox user."""
    assert jwt_audience(login_url) == "https://test.salesforce.com"


def test_a_production_host_that_merely_mentions_cs_keeps_the_login_audience() -> None:
    assert jwt_audience("https://docs42.my.salesforce.com") == "https://login.salesforce.com"


@pytest.mark.parametrize(
    ("instance", "allowed"),
    [
        ("https://acme.my.salesforce.com/services/Soap/u/66.0/00D", True),
        ("https://acme--c.vf.force.com/x", True),
        ("https://login.salesforce.com", True),
        ("https://evil.example.com/salesforce.com", False),
        ("https://salesforce.com.evil.example", False),
        ("http://acme.my.salesforce.com", False),
        ("https://127.0.0.1:8443", False),
        ("https://evil.example\\.salesforce.com", False),  # requests would connect to evil.example
        ("https://evil.example%2f.salesforce.com", False),
        ("https://user@evil.example@acme.my.salesforce.com", False),
        ("https://acme.my.salesforce.com:443/x", True),
    ],
)
def test_a_session_id_only_goes_to_salesforce_hosts(instance: str, allowed: bool) -> None:
    assert session_host_allowed(instance, "https://login.salesforce.com") is allowed


def test_the_shared_session_keeps_no_cookies(worker_settings: Settings) -> None:
    """One session serves every job of a work process, whoever each runs as: a cookie one answer sets (Salesforce
    sets ``BrowserId``) must not ride along on another job's calls."""
    import http.server
    import threading

    from services.salesforce.client import http_session

    class SetsCookie(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen = self.headers.get("Cookie") or ""
            self.send_response(200)
            self.send_header("Set-Cookie", "BrowserId=abc; Path=/")
            self.send_header("Content-Length", str(len(seen)))
            self.end_headers()
            self.wfile.write(seen.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SetsCookie)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        session = http_session(worker_settings)
        assert http_session(worker_settings) is session, "one session per process"
        url = f"http://127.0.0.1:{server.server_port}/"
        assert session.get(url).text == ""
        assert session.get(url).text == "", "the cookie the first answer set was not sent back"
        assert not session.cookies
    finally:
        server.shutdown()
        server.server_close()
