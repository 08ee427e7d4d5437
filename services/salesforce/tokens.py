"""OAuth tokens for the workers: fetched from ``SALESFORCE_LOGIN_URL``, shared through Redis.

Two flows (https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_client_credentials_flow.htm and
https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm):

* **Client credentials**: ``SALESFORCE_CLIENT_ID`` + ``SALESFORCE_CLIENT_SECRET``, posted as a
  form to ``<login url>/services/oauth2/token``; the token runs as the app's Run As user.
  Salesforce serves this flow on the My Domain host, so set ``SALESFORCE_LOGIN_URL`` to it.
* **JWT bearer**: ``SALESFORCE_CLIENT_ID`` + ``SALESFORCE_USERNAME`` + ``SALESFORCE_PRIVATE_KEY``;
  an RS256 assertion with ``iss``/``sub``/``aud``/``exp`` (3 minutes).

The responses carry no ``expires_in``: a token lives as long as the user's
session timeout. So the token is cached in Redis (one login for all worker
processes, not one per job), and replaced when a call answers 401
``INVALID_SESSION_ID``. A token is never written into a job.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from urllib.parse import urlparse

import jwt
import redis
import requests

from services import keys
from services.errors import SalesforcePermanentError, SalesforceTransientError
from services.settings import Settings

logger = logging.getLogger(__name__)

TOKEN_PREFIX = keys.TOKEN_PREFIX
TOKEN_CACHE_TTL = 3600
"""Seconds a cached token is reused before a fresh login even without a 401 (sessions last >= 2 h by default)."""


@dataclass(frozen=True)
class Token:
    access_token: str
    instance_url: str


_SANDBOX_HOST = re.compile(
    r"(^test\.salesforce\.com$)"  # the sandbox login host
    r"|(\.sandbox\.my\.salesforce\.com$)"  # enhanced-domain sandboxes
    r"|(\.scratch\.my\.salesforce\.com$)"  # scratch orgs
    r"|(^[\w-]+--[\w-]+\.my\.salesforce\.com$)"  # legacy sandbox My Domains: acme--uat.my.salesforce.com
    r"|(^(?:[\w-]+\.)?cs\d+(?:\.my)?\.salesforce\.com$)"  # sandbox instances: cs42.salesforce.com
)


def jwt_audience(login_url: str) -> str:
    """The ``aud`` claim: test.salesforce.com for sandbox and scratch hosts, login.salesforce.com for
    other Salesforce hosts, else the login URL itself (an Experience Cloud site, or the emulator).

    Salesforce documents ``https://login.salesforce.com``, ``https://test.salesforce.com`` or an
    Experience Cloud site URL (https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm);
    a My Domain login URL still takes login (production) or test (sandbox) as the audience. Which hosts
    are sandboxes follows the Salesforce CLI's own rule, ``SfdcUrl.isSandboxUrl`` and
    ``getJwtAudienceUrl`` (https://github.com/forcedotcom/sfdx-core/blob/main/src/util/sfdcUrl.ts).
    """
    host = (urlparse(login_url).hostname or "").lower()
    if _SANDBOX_HOST.search(host):
        return "https://test.salesforce.com"
    if host.endswith(".salesforce.com"):
        return "https://login.salesforce.com"
    return login_url.rstrip("/")


def _form(settings: Settings) -> dict[str, str]:
    if settings.salesforce_auth_mode == "jwt_bearer":
        assertion = jwt.encode(
            {
                "iss": settings.salesforce_client_id,
                "sub": settings.salesforce_username,
                "aud": jwt_audience(settings.salesforce_login_url),
                "exp": int(time.time()) + 180,
            },
            settings.salesforce_private_key.replace("\\n", "\n"),
            algorithm="RS256",
        )
        return {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
    return {
        "grant_type": "client_credentials",
        "client_id": settings.salesforce_client_id,
        "client_secret": settings.salesforce_client_secret,
    }


def fetch_token(settings: Settings, session: requests.Session) -> Token:
    """Log in once. OAuth refusals are permanent (an admin must fix the app); outages are transient."""
    url = settings.salesforce_login_url + "/services/oauth2/token"
    try:
        response = session.post(url, data=_form(settings), headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise SalesforceTransientError(
            f"Could not reach {url}: {type(exc).__name__}", code="LOGIN_UNREACHABLE"
        ) from exc
    if response.status_code >= 500:
        raise SalesforceTransientError(f"Login answered HTTP {response.status_code}.", code="LOGIN_UNAVAILABLE")
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or "access_token" not in body:
        error = body.get("error", f"HTTP_{response.status_code}")
        raise SalesforcePermanentError(
            f"Salesforce refused the login at {url}: {error}: {body.get('error_description', '')}. Check "
            "SALESFORCE_CLIENT_ID and its secret or key, the Run As user, and that the app is approved.",
            code=str(error).upper(),
        )
    return Token(access_token=body["access_token"], instance_url=body["instance_url"])


class SharedToken:
    """A token cached in Redis for every worker process, refreshed on demand."""

    def __init__(self, settings: Settings, connection: redis.Redis, session: requests.Session) -> None:
        self._settings = settings
        self._redis = connection
        self._session = session
        identity = f"{settings.salesforce_login_url}|{settings.salesforce_client_id}|{settings.salesforce_username}"
        self._key = TOKEN_PREFIX + hashlib.sha256(identity.encode()).hexdigest()[:24]

    def __call__(self, refresh: bool) -> Token:
        """The cached token, or a new one when there is none or ``refresh`` is asked."""
        if not refresh:
            cached = self._redis.get(self._key)
            if cached:
                data = json.loads(cached)
                return Token(data["access_token"], data["instance_url"])
        token = fetch_token(self._settings, self._session)
        self._redis.set(self._key, json.dumps(token.__dict__), ex=TOKEN_CACHE_TTL)
        logger.info("logged in to Salesforce", extra={"fields": {"instance": urlparse(token.instance_url).hostname}})
        return token
