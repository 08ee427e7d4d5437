"""``POST /services/oauth2/token``: client credentials and JWT bearer flows.

Shapes follow tests/fixtures/salesforce/oauth-*
(https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_client_credentials_flow.htm,
https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm):

* client credentials (id/secret in the form, or HTTP Basic as simple-salesforce sends them):
  ``access_token, signature, scope, instance_url, id, token_type, issued_at`` where
  ``issued_at`` is epoch *milliseconds* as a string and ``signature`` is
  base64(HMAC-SHA256(client_secret, id + issued_at)) (formula not confirmed by Salesforce's documentation);
* JWT bearer: RS256 assertion with ``iss`` = consumer key, ``sub`` = username, ``aud`` =
  login/test URL (or ours), ``exp`` in the future (int *or* string: simple-salesforce sends a
  string); response without signature/issued_at/refresh_token;
* errors ``{"error", "error_description"}``, status per ``OrgConfig.oauth_error_status``.

``instance_url`` never ends with a slash (a trailing one breaks every simple-salesforce URL).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time

import jwt
from cryptography import x509
from flask import Blueprint, Response, current_app, request

from services import settings as services_settings

from .config import MAX_JWT_LIFETIME_SECONDS, PRODUCTION_AUDIENCE, SANDBOX_AUDIENCE
from .sferrors import json_response
from .state import OrgState

logger = logging.getLogger(__name__)

bp = Blueprint("devorg_oauth", __name__)

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


GENERIC_LOGIN_HOSTS = services_settings.GENERIC_LOGIN_HOSTS
"""login.salesforce.com and test.salesforce.com: a request reaching the emulator under those names
(``Host`` header) is treated as sent to them."""


class OAuthError(Exception):
    def __init__(self, error: str, description: str):
        super().__init__(description)
        self.error = error
        self.description = description


def _state() -> OrgState:
    return current_app.extensions["devorg_state"]


@bp.errorhandler(OAuthError)
def _oauth_error(exc: OAuthError) -> Response:
    status = _state().config.oauth_error_status.get(exc.error, 400)
    return json_response({"error": exc.error, "error_description": exc.description}, status)


@bp.post("/services/oauth2/token")
def token() -> Response:
    """Issue an access token for a supported grant."""
    grant = request.form.get("grant_type", "")
    if grant == "client_credentials":
        return _client_credentials(_state())
    if grant == JWT_GRANT:
        return _jwt_bearer(_state())
    raise OAuthError("unsupported_grant_type", "grant type not supported")


def _instance_url(state: OrgState) -> str:
    return (state.config.instance_url or state.base_url or request.host_url).rstrip("/")


def _identity(state: OrgState) -> str:
    return f"{state.config.identity_host.rstrip('/')}/id/{state.config.org_id}/{state.user_id}"


def _client_credentials(state: OrgState) -> Response:
    client_id, secret = request.form.get("client_id"), request.form.get("client_secret")
    if request.authorization and request.authorization.type == "basic":
        client_id, secret = request.authorization.username, request.authorization.password
    if client_id != state.config.client_id:
        raise OAuthError("invalid_client_id", "client identifier invalid")
    if not secret or not hmac.compare_digest(secret, state.config.client_secret):
        raise OAuthError("invalid_client", "invalid client credentials")
    if not state.config.client_credentials_enabled:
        raise OAuthError("invalid_grant", "no client credentials user enabled")
    if (request.host.split(":")[0]).lower() in GENERIC_LOGIN_HOSTS:
        # The flow needs the org's My Domain: "request not supported on this domain" on the generic hosts
        # (https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_client_credentials_flow.htm).
        raise OAuthError("invalid_grant", "request not supported on this domain")
    session = state.tokens.issue(state.config.username, "client_credentials")
    identity = _identity(state)
    issued_at = str(int(session.issued_at * 1000))
    mac = hmac.new(state.config.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256)
    logger.info("client_credentials token issued for %s", state.config.username)
    return json_response(
        {
            "access_token": session.access_token,
            "signature": base64.b64encode(mac.digest()).decode(),
            "scope": "api",
            "instance_url": _instance_url(state),
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
        }
    )


def _jwt_bearer(state: OrgState) -> Response:
    assertion = request.form.get("assertion", "")
    if not state.config.jwt_cert_pem:
        raise OAuthError("invalid_client", "invalid client credentials")
    public_key = x509.load_pem_x509_certificate(state.config.jwt_cert_pem.encode()).public_key()
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(
            assertion,
            public_key,
            algorithms=["RS256"],  # type: ignore[arg-type]
            options={"verify_exp": False, "verify_aud": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.PyJWTError as exc:
        logger.info("JWT rejected: %s", exc)
        raise OAuthError("invalid_grant", "invalid assertion") from exc
    if header.get("alg") != "RS256":
        raise OAuthError("invalid_grant", "invalid assertion")
    if claims.get("iss") != state.config.client_id:
        raise OAuthError("invalid_client_id", "client identifier invalid")
    org_audience = SANDBOX_AUDIENCE if state.config.sandbox else PRODUCTION_AUDIENCE
    audiences = {a.rstrip("/") for a in (org_audience, *state.config.jwt_audiences, state.base_url,
                                         request.host_url) if a}
    aud = claims.get("aud")
    aud_values = aud if isinstance(aud, list) else [aud]
    if not any(isinstance(a, str) and a.rstrip("/") in audiences for a in aud_values):
        raise OAuthError("invalid_grant", "audience is invalid")
    try:
        exp = float(claims["exp"])
    except (KeyError, TypeError, ValueError) as exc:
        raise OAuthError("invalid_grant", "invalid assertion") from exc
    now = time.time()
    if exp + state.config.jwt_leeway_seconds <= now:
        raise OAuthError("invalid_grant", "expired authorization code")
    if exp - now > MAX_JWT_LIFETIME_SECONDS + state.config.jwt_leeway_seconds:
        # Salesforce's wording for an exp too far ahead is not documented; this is its generic refusal.
        raise OAuthError("invalid_grant", "invalid assertion")
    username = claims.get("sub")
    if username not in state.config.known_usernames():
        raise OAuthError("invalid_grant", "user hasn't approved this consumer")
    session = state.tokens.issue(username, "jwt-bearer")
    logger.info("jwt-bearer token issued for %s", username)
    return json_response(
        {
            "access_token": session.access_token,
            "scope": "api",
            "instance_url": _instance_url(state),
            "id": _identity(state),
            "token_type": "Bearer",
        }
    )
