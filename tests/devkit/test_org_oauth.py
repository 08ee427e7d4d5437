"""OAuth token endpoint: client credentials and JWT bearer, held to the fixture shapes."""

from __future__ import annotations

import time

import jwt
import pytest

from devkit.org import EmulatedOrg, OrgConfig
from tests.support.org import Api, load_fixture, same_shape


def _token(org: EmulatedOrg, **form: str):  # a requests.Response
    return org.session().post(org.token_url, data=form, timeout=10)


def test_client_credentials_basic_auth_matches_fixture(org: EmulatedOrg) -> None:
    """HTTP Basic (what simple-salesforce sends) yields the documented response shape."""
    response = org.session().post(org.token_url, data={"grant_type": "client_credentials"},
                                  auth=(org.client_id, org.client_secret), timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert same_shape(body, load_fixture("oauth-token-response-client-credentials.json"))
    assert body["instance_url"] == org.base_url and not body["instance_url"].endswith("/")
    assert body["access_token"].startswith(org.org_id[:15] + "!")
    assert body["issued_at"].isdigit() and abs(int(body["issued_at"]) / 1000 - time.time()) < 60
    assert body["id"].endswith(f"/id/{org.org_id}/{org.state.user_id}")


def test_client_credentials_in_form(org: EmulatedOrg) -> None:
    response = _token(org, grant_type="client_credentials", client_id=org.client_id,
                      client_secret=org.client_secret)
    assert response.status_code == 200
    token = response.json()["access_token"]
    assert Api(org, token).get("/limits").status_code == 200


def test_bad_secret_is_invalid_client(org: EmulatedOrg) -> None:
    response = _token(org, grant_type="client_credentials", client_id=org.client_id, client_secret="nope")
    assert response.status_code == 400
    assert response.json() == load_fixture("oauth-error-invalid-client.json")


def test_unknown_client_and_grant(org: EmulatedOrg) -> None:
    response = _token(org, grant_type="client_credentials", client_id="x", client_secret="y")
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_client_id", "error_description": "client identifier invalid"}
    response = _token(org, grant_type="password")
    assert response.json()["error"] == "unsupported_grant_type"


class TestNoRunAsUser:
    @pytest.fixture
    def org_config(self) -> OrgConfig:
        return OrgConfig(client_credentials_enabled=False)

    def test_no_run_as_user(self, org: EmulatedOrg) -> None:
        response = _token(org, grant_type="client_credentials", client_id=org.client_id,
                          client_secret=org.client_secret)
        assert response.status_code == 400
        assert response.json() == load_fixture("oauth-error-no-client-credentials-user.json")


class TestJwtBearer:
    @pytest.fixture
    def org_config(self, jwt_keypair: tuple[bytes, str]) -> OrgConfig:
        return OrgConfig(jwt_cert_pem=jwt_keypair[1])

    def _assert(self, org: EmulatedOrg, key: bytes, **overrides: object) -> str:
        claims = {"iss": org.client_id, "sub": org.username, "aud": "https://login.salesforce.com",
                  "exp": str(int(time.time()) + 180)}  # simple-salesforce sends exp as a string
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, key, algorithm="RS256")

    def _post(self, org: EmulatedOrg, assertion: str):
        return _token(org, grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer", assertion=assertion)

    def test_valid_assertion(self, org: EmulatedOrg, jwt_keypair: tuple[bytes, str]) -> None:
        response = self._post(org, self._assert(org, jwt_keypair[0]))
        assert response.status_code == 200, response.text
        assert same_shape(response.json(), load_fixture("oauth-token-response-jwt-bearer.json"))
        assert Api(org, response.json()["access_token"]).get("/limits").status_code == 200

    def test_the_org_itself_is_an_audience_too(self, org: EmulatedOrg, jwt_keypair: tuple[bytes, str]) -> None:
        """As an Experience Cloud site's URL would be."""
        response = self._post(org, self._assert(org, jwt_keypair[0], aud=org.base_url, exp=int(time.time()) + 60))
        assert response.status_code == 200

    def test_a_production_org_refuses_the_sandbox_audience(self, org: EmulatedOrg,
                                                            jwt_keypair: tuple[bytes, str]) -> None:
        response = self._post(org, self._assert(org, jwt_keypair[0], aud="https://test.salesforce.com"))
        assert response.status_code == 400
        assert response.json() == {"error": "invalid_grant", "error_description": "audience is invalid"}

    def test_a_sandbox_takes_the_test_audience_only(self, jwt_keypair: tuple[bytes, str], tmp_path) -> None:
        with EmulatedOrg(OrgConfig(jwt_cert_pem=jwt_keypair[1], sandbox=True), state_dir=tmp_path / "sb") as sandbox:
            test_aud = self._post(sandbox, self._assert(sandbox, jwt_keypair[0], aud="https://test.salesforce.com"))
            login_aud = self._post(sandbox, self._assert(sandbox, jwt_keypair[0]))
        assert test_aud.status_code == 200, test_aud.text
        assert login_aud.json() == {"error": "invalid_grant", "error_description": "audience is invalid"}

    def test_exp_more_than_three_minutes_ahead_is_refused(self, org: EmulatedOrg,
                                                           jwt_keypair: tuple[bytes, str]) -> None:
        response = self._post(org, self._assert(org, jwt_keypair[0], exp=int(time.time()) + 600))
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant"

    def test_bad_signature(self, org: EmulatedOrg) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        response = self._post(org, self._assert(org, other))
        assert response.status_code == 400
        assert response.json() == {"error": "invalid_grant", "error_description": "invalid assertion"}

    def test_wrong_audience(self, org: EmulatedOrg, jwt_keypair: tuple[bytes, str]) -> None:
        response = self._post(org, self._assert(org, jwt_keypair[0], aud="https://evil.example.com"))
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_grant"

    def test_expired(self, org: EmulatedOrg, jwt_keypair: tuple[bytes, str]) -> None:
        response = self._post(org, self._assert(org, jwt_keypair[0], exp=int(time.time()) - 5))
        assert response.json() == {"error": "invalid_grant", "error_description": "expired authorization code"}

    def test_unknown_user_and_issuer(self, org: EmulatedOrg, jwt_keypair: tuple[bytes, str]) -> None:
        response = self._post(org, self._assert(org, jwt_keypair[0], sub="stranger@example.com"))
        assert response.json() == load_fixture("oauth-error-not-approved.json")
        response = self._post(org, self._assert(org, jwt_keypair[0], iss="someone-else"))
        assert response.json()["error"] == "invalid_client_id"


class TestExpiry:
    @pytest.fixture
    def org_config(self) -> OrgConfig:
        return OrgConfig(token_ttl_seconds=0.5)

    def test_token_expires_after_ttl(self, org: EmulatedOrg, api: Api) -> None:
        assert api.get("/limits").status_code == 200
        time.sleep(0.6)
        response = api.get("/limits")
        assert response.status_code == 401
        assert response.json() == load_fixture("rest-error-401-invalid-session.json")


def test_admin_expire_all(org: EmulatedOrg, api: Api) -> None:
    assert api.get("/limits").status_code == 200
    assert api.admin("POST", "/tokens/expire").json() == {"expired": 1}
    assert api.get("/limits").json()[0]["errorCode"] == "INVALID_SESSION_ID"


def test_missing_or_odd_authorization(org: EmulatedOrg, api: Api) -> None:
    session = org.session()
    url = f"{api.base}/limits"
    assert session.get(url, timeout=10).status_code == 401
    assert session.get(url, headers={"Authorization": "Basic abc"}, timeout=10).status_code == 401
    assert session.get(url, headers={"Authorization": f"OAuth {api.token}"}, timeout=10).status_code == 200


@pytest.mark.parametrize("host", ["login.salesforce.com", "test.salesforce.com"])
def test_client_credentials_on_a_generic_login_host_is_not_supported(org: EmulatedOrg, host: str) -> None:
    """Only the org's My Domain takes the client credentials flow; the shared login hosts refuse it."""
    response = org.session().post(org.token_url, headers={"Host": host},
                                  data={"grant_type": "client_credentials", "client_id": org.client_id,
                                        "client_secret": org.state.config.client_secret})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "request not supported on this domain"}
