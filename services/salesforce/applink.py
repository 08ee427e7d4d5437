"""Heroku AppLink: who invoked the app (``x-client-context``) and its Authorized Users.

Heroku AppLink puts a service-mesh process in front of the app (buildpack
``heroku/heroku-applink-service-mesh``): it listens on ``$PORT``, authenticates each call with the
add-on (``HEROKU_APPLINK_API_URL`` + ``HEROKU_APPLINK_TOKEN``), and forwards it to the app on
``127.0.0.1:$APP_PORT`` with the caller's context in ``x-client-context``: base64 of a JSON object
with ``requestId``, ``accessToken``, ``apiVersion``, ``namespace``, ``orgId``, ``orgDomainUrl`` and
``userContext{userId, username}`` (https://github.com/heroku/heroku-integration-service-mesh,
https://devcenter.heroku.com/articles/getting-started-heroku-applink).

Two parts, and where the official ``heroku-applink`` package (1.1.4) fits:

* :func:`parse_client_context` decodes the header with the package's own
  ``heroku_applink.ClientContext.from_header`` (``heroku_applink/context.py``), so the field names are
  Heroku's, not a copy. The package does not validate: ``b64decode`` without ``validate=True`` skips
  characters outside the alphabet, and a missing field is a bare ``KeyError``. So the header is
  checked strictly here first, and every failure becomes a :class:`InvalidClientContext` that says
  which field is wrong. The org must be one of ``OFFLOAD_ORG_IDS`` (:class:`~services.errors.WrongOrg`).
* :func:`fetch_authorization` is ``GET {HEROKU_APPLINK_API_URL}/authorizations/{developer_name}``
  with ``Authorization: Bearer {HEROKU_APPLINK_TOKEN}`` (and ``X-App-UUID: HEROKU_APP_ID`` when set),
  the request the package's ``Authorization.find`` makes (``heroku_applink/authorization.py``), answered
  with ``org.instance_url`` and ``org.user_auth.access_token``. It is written here on ``requests``
  because the package's client is asyncio/aiohttp only and workers are synchronous RQ processes, and
  because its errors are aiohttp's, not Salesforce-classified ones the job runner retries or fails by.
  The Dev Center's user modes (https://devcenter.heroku.com/articles/heroku-applink-user-modes): this is
  ``authorized-user``, "common ... to run workloads, such as in worker dynos".
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlparse

import requests

from services.errors import CallerRejected, SalesforcePermanentError, SalesforceTransientError, WrongOrg
from services.settings import Settings
from services.sfids import is_valid_id, to_18

CLIENT_CONTEXT_HEADER = "x-client-context"

MAX_CONTEXT_CHARS = 16_384
"""Longest header accepted: a context is a few hundred bytes (an access token is ~112 characters)."""

_REQUIRED = ("requestId", "accessToken", "apiVersion", "orgId", "orgDomainUrl", "userContext")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


class InvalidClientContext(CallerRejected):
    """The ``x-client-context`` header is missing, not base64 JSON, or lacks a field the job needs."""

    code = "INVALID_CLIENT_CONTEXT"


@dataclass(frozen=True)
class ClientContext:
    """The invocation's Salesforce context, as the mesh passed it (org id normalized to 18 characters)."""

    request_id: str
    access_token: str
    api_version: str
    org_id: str
    org_domain_url: str
    user_id: str
    username: str
    namespace: str | None = None

    def __repr__(self) -> str:  # the access token is a bearer credential: never in a log line
        return (f"ClientContext(request_id={self.request_id!r}, org_id={self.org_id!r}, "
                f"user_id={self.user_id!r}, username={self.username!r})")


def parse_client_context(header: str | None, settings: Settings) -> ClientContext:
    """The context of one AppLink invocation, checked.

    Raises:
        InvalidClientContext: code MISSING_CLIENT_CONTEXT, MALFORMED_CLIENT_CONTEXT or INCOMPLETE_CLIENT_CONTEXT.
        WrongOrg: the org is not one of ``OFFLOAD_ORG_IDS``.
    """
    from heroku_applink import ClientContext as SdkContext
    from heroku_applink import Config, Connection

    if not header or not header.strip():
        raise InvalidClientContext(
            "No x-client-context header: AppLink invocations reach /applink/<process> only through the "
            "heroku-applink-service-mesh process, which adds it (see docs/applink.md).",
            code="MISSING_CLIENT_CONTEXT")
    header = header.strip()
    if len(header) > MAX_CONTEXT_CHARS or not _BASE64.fullmatch(header) or len(header) % 4:
        raise InvalidClientContext("The x-client-context header is not base64.", code="MALFORMED_CLIENT_CONTEXT")
    try:
        data = json.loads(base64.b64decode(header, validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidClientContext("The x-client-context header is not base64 of a JSON object.",
                                   code="MALFORMED_CLIENT_CONTEXT") from None
    if not isinstance(data, dict):
        raise InvalidClientContext("The x-client-context header is not base64 of a JSON object.",
                                   code="MALFORMED_CLIENT_CONTEXT")
    missing = [name for name in _REQUIRED if not data.get(name)]
    user = data.get("userContext")
    if isinstance(user, dict):
        missing += [f"userContext.{name}" for name in ("userId", "username") if not isinstance(user.get(name), str)
                    or not user.get(name)]
    elif "userContext" not in missing:
        missing.append("userContext")
    wrong_type = [name for name in _REQUIRED[:-1] if data.get(name) and not isinstance(data[name], str)]
    if missing or wrong_type:
        raise InvalidClientContext(
            "The x-client-context is incomplete: "
            + "; ".join(([f"missing {', '.join(missing)}"] if missing else [])
                        + ([f"not a string: {', '.join(wrong_type)}"] if wrong_type else [])) + ".",
            code="INCOMPLETE_CLIENT_CONTEXT", fields={name: ["Required."] for name in missing + wrong_type})
    sdk = SdkContext.from_header(header, Connection(Config.default()))  # Heroku's own field mapping
    org_id = sdk.org.id
    if not is_valid_id(org_id) or not org_id.startswith("00D"):
        raise InvalidClientContext(f"The x-client-context orgId {org_id!r} is not a Salesforce org id.",
                                   code="INCOMPLETE_CLIENT_CONTEXT", fields={"orgId": ["Not an org id."]})
    org_id = to_18(org_id)
    if org_id not in settings.org_ids:
        raise WrongOrg(f"Org {org_id} is not allowed to invoke this Offload app through AppLink; add it to "
                       "OFFLOAD_ORG_IDS if it should be.")
    if urlparse(sdk.org.domain_url).scheme != "https":
        raise InvalidClientContext("The x-client-context orgDomainUrl is not an https:// URL.",
                                   code="INCOMPLETE_CLIENT_CONTEXT", fields={"orgDomainUrl": ["Not https."]})
    return ClientContext(
        request_id=sdk.request_id, access_token=sdk.access_token, api_version=sdk.api_version, org_id=org_id,
        org_domain_url=sdk.org.domain_url.rstrip("/"), user_id=sdk.org.user.id, username=sdk.org.user.username,
        namespace=sdk.namespace or None,
    )


def encode_client_context(context: dict[str, Any]) -> str:
    """The header value for a context dict (what the mesh sends; the dev kit's mesh stand-in uses it)."""
    return base64.b64encode(json.dumps(context, separators=(",", ":")).encode()).decode()


@dataclass(frozen=True)
class AuthorizedUser:
    """An Authorized User's session, from the AppLink API."""

    access_token: str
    instance_url: str
    org_id: str
    username: str


def fetch_authorization(settings: Settings, session: requests.Session, developer_name: str) -> AuthorizedUser:
    """The current session of the Authorized User ``developer_name`` (``heroku salesforce:authorizations:add``).

    Raises:
        SalesforceTransientError: the AppLink API is unreachable or answered 5xx (retry later).
        SalesforcePermanentError: not configured, unknown authorization, or not ``authorized``.
    """
    if not settings.applink_api_url or not settings.applink_token:
        raise SalesforcePermanentError(
            "The AppLink access token expired and no Authorized User is reachable: attach the heroku-applink "
            "add-on to the worker's app (it sets HEROKU_APPLINK_API_URL and HEROKU_APPLINK_TOKEN).",
            code="APPLINK_NOT_CONFIGURED")
    url = f"{settings.applink_api_url.rstrip('/')}/authorizations/{quote(developer_name, safe='')}"
    headers = {"Authorization": f"Bearer {settings.applink_token}", "Accept": "application/json"}
    if settings.heroku_app_id:
        headers["X-App-UUID"] = settings.heroku_app_id
    try:
        response = session.get(url, headers=headers)
    except requests.RequestException as exc:
        raise SalesforceTransientError(f"Could not reach the AppLink API: {type(exc).__name__}",
                                       code="APPLINK_UNREACHABLE") from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise SalesforceTransientError(f"The AppLink API answered HTTP {response.status_code}.",
                                       code="APPLINK_UNAVAILABLE")
    if response.status_code != 200:
        raise SalesforcePermanentError(
            f"The AppLink API answered HTTP {response.status_code} for authorization {developer_name!r}: check "
            "OFFLOAD_APPLINK_AUTHORIZATION against `heroku salesforce:authorizations`.",
            code="APPLINK_AUTHORIZATION_NOT_FOUND")
    try:
        body = response.json()
        org, status = body["org"], body.get("status")
        user = AuthorizedUser(access_token=org["user_auth"]["access_token"], instance_url=org["instance_url"],
                              org_id=to_18(org["id"]), username=org["user_auth"].get("username", ""))
    except (ValueError, KeyError, TypeError):
        raise SalesforceTransientError("The AppLink API's answer has no org.user_auth.access_token.",
                                       code="APPLINK_UNAVAILABLE") from None
    if status != "authorized":
        raise SalesforcePermanentError(
            f"Authorized User {developer_name!r} is {status!r}, not 'authorized': re-run "
            f"`heroku salesforce:authorizations:add {developer_name}`.", code="APPLINK_AUTHORIZATION_NOT_READY")
    return user
