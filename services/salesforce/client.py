"""Salesforce access for workers: the only module that imports simple-salesforce.

Small, typed functions over the REST API, each with a timeout and with
Salesforce's errors sorted into :class:`~services.errors.SalesforceTransientError`
(retry later: 5xx, timeouts, ``UNABLE_TO_LOCK_ROW``, ``REQUEST_LIMIT_EXCEEDED``)
and :class:`~services.errors.SalesforcePermanentError` (fail now: ``NOT_FOUND``,
``INVALID_FIELD``, validation, access). Classification is by Salesforce's
``errorCode``, not by exception class (simple_salesforce/util.py, https://github.com/simple-salesforce/simple-salesforce).

Authentication is ours, not simple-salesforce's (it can only log in to
``*.salesforce.com``): :mod:`services.salesforce.tokens` gets a token from
``SALESFORCE_LOGIN_URL`` and shares it between workers through Redis, and the
client is built from ``instance_url`` + token. A 401 ``INVALID_SESSION_ID``
re-authenticates exactly once (simple-salesforce alone can recurse without
bound there, see simple_salesforce/api.py).
"""

from __future__ import annotations

import http.cookiejar
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlparse, urlsplit

import requests
import urllib3
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError

from services import keys
from services.errors import (
    ApiLimitNear,
    ContentPublicationLimitNear,
    SalesforcePermanentError,
    SalesforceTransientError,
)
from services.logs import event
from services.salesforce import allowance
from services.salesforce.applink import fetch_authorization
from services.salesforce.sessions import load_session
from services.salesforce.tokens import SharedToken, Token

logger = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_CODES = frozenset({
    "UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE", "API_CURRENTLY_DISABLED",
    "QUERY_TIMEOUT", "CONCURRENT_REQUESTS_LIMIT_EXCEEDED",
})
"""errorCodes worth retrying later, whatever the HTTP status they came with."""

BASE64_JSON_LIMIT = 37_500_000
"""Bytes of base64 a JSON ContentVersion insert may carry; beyond it, multipart is required (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_sobject_insert_update_blob.htm)."""

_LIMIT_RE = re.compile(r"api-usage=(\d+)/(\d+)")


class TimeoutSession(requests.Session):
    """A requests session with a default timeout and a CA bundle that the environment can't override.

    requests lets ``REQUESTS_CA_BUNDLE`` replace ``session.verify`` unless
    ``verify`` is passed per request, so it is passed on every request.
    """

    def __init__(self, timeout: float, verify: bool | str = True) -> None:
        super().__init__()
        self.default_timeout = timeout
        self.verify = verify
        # Keep no cookies: one session serves every job of a work process, whoever they run as, and the REST
        # API authenticates by the Authorization header alone.
        self.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.default_timeout)
        kwargs.setdefault("verify", self.verify)
        return super().request(method, url, *args, **kwargs)


_sessions: dict[tuple[int, float, bool | str], TimeoutSession] = {}


def http_session(settings: Any) -> TimeoutSession:
    """This process's HTTP session towards Salesforce, kept across jobs so its connections are too.

    Salesforce keeps HTTPS connections open between requests (HTTP/1.1 persistent connections, RFC 9112
    section 9.3: https://www.rfc-editor.org/rfc/rfc9112#section-9.3), so a job that reuses one skips the
    TCP and TLS handshakes: up to four round trips per call, which is most of a small call's time over the
    internet. Keyed by process id, so a forked child never shares its parent's sockets.
    """
    key = (os.getpid(), float(settings.salesforce_timeout), settings.salesforce_ca_bundle or True)
    session = _sessions.get(key)
    if session is None:
        session = _sessions[key] = TimeoutSession(key[1], key[2])
    return session


@dataclass(frozen=True)
class ApiUsage:
    """The org's daily API use, from the ``Sforce-Limit-Info`` header or ``/limits``; ``read_at`` is epoch s."""

    used: int
    limit: int
    read_at: float = 0.0

    @property
    def fraction(self) -> float:
        return self.used / self.limit if self.limit else 0.0


def parse_limit_info(header: str | None) -> ApiUsage | None:
    """``api-usage=18/5000`` (optionally followed by ``; api-bursts=...``) -> ApiUsage."""
    match = _LIMIT_RE.search(header or "")
    return ApiUsage(int(match.group(1)), int(match.group(2))) if match else None


def classify(exc: Exception) -> Exception:
    """Turn a simple-salesforce or requests error into our transient/permanent error."""
    if isinstance(exc, requests.Timeout):
        return SalesforceTransientError("Salesforce did not answer in time (OFFLOAD_SALESFORCE_TIMEOUT).",
                                        code="TIMEOUT")
    if isinstance(exc, requests.ConnectionError):
        return SalesforceTransientError(f"Could not connect to Salesforce: {exc}", code="CONNECTION_ERROR")
    if isinstance(exc, SalesforceError):
        code, message = _first_error(exc.content)
        code = code or f"HTTP_{exc.status}"
        if code in TRANSIENT_CODES or exc.status >= 500:
            return SalesforceTransientError(f"Salesforce is busy: {code}: {message}", code=code)
        return SalesforcePermanentError(f"Salesforce refused the request: {code}: {message}", code=code)
    return exc


def _first_error(content: Any) -> tuple[str | None, str]:
    if isinstance(content, bytes | str):
        try:
            content = json.loads(content)
        except ValueError:
            return None, str(content)[:300]
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        return first.get("errorCode") or first.get("statusCode"), str(first.get("message", ""))
    if isinstance(content, dict):
        return content.get("errorCode") or content.get("error"), str(content.get("message", content))
    return None, str(content)[:300]


class SalesforceClient:
    """Typed REST calls for Offload's jobs, with one re-authentication on an expired session.

    Args:
        token: Gives a token; called again with ``refresh=True`` after a 401.
        api_version: ``"66.0"``.
        session: The HTTP session (timeouts, CA bundle).
        on_usage: Called with the org's API usage after each call (for slowing down and metrics).
        allowance: Redis, where the workers share the estimate of the org's daily file cap
            (:mod:`services.salesforce.allowance`); None: uploads do not look at the cap.
    """

    def __init__(self, token: Callable[[bool], Token], *, api_version: str, session: TimeoutSession,
                 on_usage: Callable[[ApiUsage], None] | None = None, allowance: Any | None = None) -> None:
        self._token_source = token
        self._api_version = api_version
        self._session = session
        self._on_usage = on_usage
        self._allowance = allowance
        self._sf = self._connect(token(False))
        self.calls = 0

    def _connect(self, token: Token) -> Salesforce:
        return Salesforce(instance_url=token.instance_url, session_id=token.access_token,
                          session=self._session, version=self._api_version)

    @property
    def base_url(self) -> str:
        return self._sf.base_url

    def _call(self, operation: Callable[[Salesforce], T]) -> T:
        """Run one call; after a 401 INVALID_SESSION_ID get a fresh token and try once more."""
        for attempt in (1, 2):
            try:
                self.calls += 1
                result = operation(self._sf)
                self._report_usage()
                return result
            except SalesforceError as exc:
                code, _ = _first_error(exc.content)
                if exc.status == 401 and attempt == 1:
                    logger.info("Salesforce session expired; authenticating again")
                    self._sf = self._connect(self._token_source(True))
                    continue
                if exc.status == 401:
                    # Transient: a token revoked by a password reset or a session policy change is often
                    # followed by a working one minutes later, and the next attempt logs in afresh. If it
                    # never works, the job's last retry fails with this message.
                    raise SalesforceTransientError(
                        "Salesforce refused a freshly issued token too (INVALID_SESSION_ID twice). If this "
                        "persists, check the integration user (active, API Enabled) and the Connected App's "
                        "session and IP policies.", code=code or "INVALID_SESSION_ID") from exc
                raise classify(exc) from exc
            except requests.RequestException as exc:
                raise classify(exc) from exc
        raise AssertionError("unreachable")

    def _report_usage(self) -> None:
        usage = self._sf.api_usage.get("api-usage") if isinstance(self._sf.api_usage, dict) else None
        if usage is not None and self._on_usage is not None:
            self._on_usage(ApiUsage(int(usage.used), int(usage.total)))

    def _raw(self, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
             ) -> requests.Response:
        """A call simple-salesforce can't make (multipart, streaming), with its error handling."""
        headers = {**{k: v for k, v in self._sf.headers.items() if k != "Content-Type"}, **(headers or {})}
        response = self._session.request(method, self.base_url + path, headers=headers, **kwargs)
        if response.status_code >= 300:
            raise SalesforceError(response.url, response.status_code, path, _json_or_text(response.content))
        usage = parse_limit_info(response.headers.get("Sforce-Limit-Info"))
        if usage is not None and self._on_usage is not None:
            self._on_usage(usage)
        return response

    def refresh_usage(self) -> ApiUsage:
        """Read the org's daily figures from ``/limits`` (``DailyApiRequests`` and ``ContentPublicationLimit``,
        Max and Remaining, https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_limits.htm)
        and record both; returns the API usage."""
        data = self._call(lambda sf: sf.limits())
        read_at = time.time()
        daily = data["DailyApiRequests"]
        usage = ApiUsage(int(daily["Max"]) - int(daily["Remaining"]), int(daily["Max"]), read_at)
        if self._on_usage is not None:
            self._on_usage(usage)
        publications = allowance.ContentPublications.from_limits(data, read_at)
        if publications is not None and self._allowance is not None:
            allowance.record(self._allowance, publications)
        return usage

    # --- records ---------------------------------------------------------------------------

    def query(self, soql: str) -> list[dict[str, Any]]:
        """Every record of a SOQL query (follows ``nextRecordsUrl``)."""
        return self._call(lambda sf: sf.query_all(soql)["records"])

    def query_page(self, soql: str | None = None, *, next_records_url: str | None = None) -> QueryPage:
        """One page of a SOQL query (up to 2,000 records), or the page a ``nextRecordsUrl`` names; for callers that
        keep their own cursor (the backfill) instead of holding every record at once. A locator Salesforce no
        longer knows fails with ``INVALID_QUERY_LOCATOR`` (permanent)."""
        if next_records_url is not None:
            data = self._call(lambda sf: sf.query_more(next_records_url, identifier_is_url=True))
        elif soql is not None:
            data = self._call(lambda sf: sf.query(soql))
        else:
            raise ValueError("give a SOQL query or a nextRecordsUrl")
        body = _json_object(data)
        return QueryPage(records=list(body.get("records") or []), total_size=int(body.get("totalSize") or 0),
                         next_records_url=None if body.get("done", True) else body.get("nextRecordsUrl"))

    def count(self, soql: str) -> int:
        """``totalSize`` of a ``SELECT COUNT() ...`` query (one call)."""
        return self.query_page(soql).total_size

    def send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A REST call by path under the versioned base URL (e.g. ``jobs/query``, Bulk API 2.0), with the client's
        re-authentication and error classification; for resources simple-salesforce has no method for."""
        return self._call(lambda sf: self._raw(method, path, **kwargs))

    def get_record(self, sobject: str, record_id: str, fields: list[str] | None = None) -> dict[str, Any]:
        params = {"fields": ",".join(fields)} if fields else None
        return self._call(lambda sf: _json_object(sf.restful(f"sobjects/{sobject}/{record_id}", params=params)))

    def create(self, sobject: str, fields: dict[str, Any]) -> str:
        """Insert a record; return its Id."""
        result = self._call(lambda sf: _json_object(sf.restful(f"sobjects/{sobject}", method="POST", json=fields)))
        return str(result["id"])

    def publish_event(self, event_type: str, fields: dict[str, Any]) -> str:
        """Publish a Platform Event (``POST sobjects/<Name>__e``, https://developer.salesforce.com/docs/atlas.en-us.platform_events.meta/platform_events/platform_events_publish_api.htm)."""
        return self.create(event_type, fields)

    # --- files -----------------------------------------------------------------------------

    def download_version_data(self, content_version_id: str, *, max_bytes: int) -> bytes:
        """The file's bytes, streamed, refusing more than ``max_bytes`` even if ContentSize lied."""
        def fetch() -> bytes:
            response = self._raw("GET", f"sobjects/ContentVersion/{quote(content_version_id)}/VersionData",
                                 stream=True)
            chunks: list[bytes] = []
            size = 0
            for chunk in _iter(response):
                size += len(chunk)
                if size > max_bytes:
                    response.close()
                    raise SalesforcePermanentError(
                        f"The file is larger than {max_bytes} bytes (OFFLOAD_MAX_IMAGE_BYTES).", code="FILE_TOO_LARGE")
                chunks.append(chunk)
            return b"".join(chunks)

        return self._call(lambda sf: fetch())

    def upload_content_versions(self, uploads: list[tuple[dict[str, Any], bytes, str]]) -> list[SaveResult]:
        """Create several ContentVersions in **one** call, together or not at all: an sObject Collections insert
        with ``allOrNone`` and one binary part per file (``binaryPartName`` / ``binaryPartNameAlias``
        VersionData; up to 500 MB of files,
        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_sobject_insert_update_blob.htm).

        Returns one :class:`SaveResult` per upload, in order. When any record fails, every one does (the
        others with ALL_OR_NONE_OPERATION_ROLLED_BACK) and nothing was created.

        Raises:
            ContentPublicationLimitNear: the org is at (or would eat into the reserve of) its daily cap of new
                files and versions; nothing was sent, or the org refused them all for the cap.
        """
        if self._allowance is not None:
            allowance.ensure_headroom(self._allowance, self.refresh_usage, len(uploads))
        records = [{"attributes": {"type": "ContentVersion", "binaryPartName": f"file{i}",
                                   "binaryPartNameAlias": "VersionData"}, **fields}
                   for i, (fields, _, _) in enumerate(uploads)]
        parts: list[tuple[str, tuple[str | None, Any, str]]] = [
            ("entity_content", (None, json.dumps({"allOrNone": True, "records": records}), "application/json"))]
        parts += [(f"file{i}", (filename, data, "application/octet-stream"))
                  for i, (_, data, filename) in enumerate(uploads)]
        try:
            response = self._call(lambda sf: self._raw("POST", "composite/sobjects", files=parts))
        except SalesforcePermanentError as exc:
            if allowance.is_cap_refusal(exc.message):
                raise self._cap_reached(exc.message) from exc
            raise
        results = [SaveResult.of(item) for item in response.json()]
        refused = next((r.message for r in results if not r.success and allowance.is_cap_refusal(r.message)), None)
        if refused is not None:
            raise self._cap_reached(refused)
        if self._allowance is not None:
            allowance.note_published(self._allowance, sum(1 for r in results if r.success))
        return results

    def _cap_reached(self, message: str) -> ContentPublicationLimitNear:
        if self._allowance is not None:
            allowance.note_cap_reached(self._allowance)
        return ContentPublicationLimitNear(
            f"Salesforce refused the files for the org's daily cap of new files and versions ({message}); "
            f"workers pause {allowance.PAUSE_SECONDS} s and look again. The job is not failed.",
            defer_seconds=allowance.PAUSE_SECONDS)

    def composite(self, subrequests: list[tuple[str, str]]) -> dict[str, Any]:
        """Several GETs in **one** API call (Composite; "the entire request counts as a single call toward your
        API limits", https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite.htm).

        ``subrequests`` are (referenceId, URL relative to the versioned base); returns each body by reference.
        A subrequest that failed raises as that call alone would.
        """
        body = {"allOrNone": False, "compositeRequest": [
            {"method": "GET", "url": f"/services/data/v{self._api_version}/{url}", "referenceId": ref}
            for ref, url in subrequests]}
        result = self._call(lambda sf: _json_object(sf.restful("composite", method="POST", json=body)))
        out: dict[str, Any] = {}
        for sub in result.get("compositeResponse", []):
            if int(sub.get("httpStatusCode", 500)) >= 300:
                raise classify(SalesforceError(sub.get("referenceId", ""), int(sub["httpStatusCode"]),
                                               "composite", sub.get("body")))
            out[str(sub.get("referenceId"))] = sub.get("body")
        return out


@dataclass(frozen=True)
class SaveResult:
    """One record's outcome in an sObject Collections call: its Id, or its errors' codes and messages."""

    id: str | None
    error_codes: tuple[str, ...]
    message: str

    @property
    def success(self) -> bool:
        return self.id is not None

    @classmethod
    def of(cls, item: dict[str, Any]) -> SaveResult:
        errors = item.get("errors") or []
        codes = tuple(str(e.get("statusCode") or e.get("errorCode") or "") for e in errors)
        message = "; ".join(str(e.get("message", "")) for e in errors)
        return cls(str(item["id"]) if item.get("success") and item.get("id") else None, codes, message)


@dataclass(frozen=True)
class QueryPage:
    """One page of query results: its records, the query's ``totalSize``, and the next page's URL (None: last)."""

    records: list[dict[str, Any]]
    total_size: int
    next_records_url: str | None


def _iter(response: requests.Response) -> Iterator[bytes]:
    yield from response.iter_content(chunk_size=256 * 1024)


def _json_object(result: Any | None) -> dict[str, Any]:
    """restful()'s answer, which is None for an empty body (these calls always get a JSON object)."""
    if not isinstance(result, dict):
        raise SalesforceTransientError(f"Salesforce answered with no JSON object ({type(result).__name__}).")
    return result


def _json_or_text(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")[:500]


# --- building the client for a job ---------------------------------------------------------

USAGE_KEY = keys.SALESFORCE_API_USAGE
API_USAGE_CEILING = 0.95
"""At this share of the org's daily API limit, jobs pause (``ApiLimitNear``) instead of calling."""
USAGE_RECHECK_SECONDS = 60
"""A figure at the ceiling older than this is read again from ``/limits`` (by one process at a time) before
jobs pause on it: the allowance is a rolling 24 h window, so it frees up while nobody calls."""
API_PAUSE_SECONDS = 300
"""How long workers pause at the ceiling before one of them looks again (one ``/limits`` call per pause)."""

SESSION_HOST_SUFFIXES = (".salesforce.com", ".force.com")


def record_usage(connection: Any, usage: ApiUsage) -> None:
    """Remember the org's latest API usage for every worker (and the metrics)."""
    read_at = usage.read_at or time.time()
    connection.set(USAGE_KEY, json.dumps({"used": usage.used, "limit": usage.limit, "at": read_at}), ex=3600)


def latest_usage(connection: Any) -> ApiUsage | None:
    raw = connection.get(USAGE_KEY)
    if not raw:
        return None
    data = json.loads(raw)
    return ApiUsage(int(data["used"]), int(data["limit"]), float(data.get("at", 0.0)))


def _check_headroom(ctx: Any, client: Callable[[], SalesforceClient]) -> SalesforceClient | None:
    """Pause (``ApiLimitNear``) while the org is at the ceiling; a stale figure is read again first.

    Returns the client it built to read ``/limits``, if it built one.
    """
    usage = latest_usage(ctx.connection)
    if usage is None or usage.fraction < API_USAGE_CEILING:
        return None
    built = None
    stale = time.time() - usage.read_at >= USAGE_RECHECK_SECONDS
    if stale and ctx.connection.set(keys.API_USAGE_RECHECK, "1", nx=True, ex=USAGE_RECHECK_SECONDS):
        built = client()
        usage = built.refresh_usage()
        event(logger, "org API usage read again", used=usage.used, limit=usage.limit)
        if usage.fraction < API_USAGE_CEILING:
            return built
    raise ApiLimitNear(
        f"The org has used {usage.used} of {usage.limit} daily API requests (pausing at "
        f"{API_USAGE_CEILING:.0%} to leave its other integrations room); workers pause {API_PAUSE_SECONDS} s "
        "and look again. The job is not failed.", defer_seconds=API_PAUSE_SECONDS)


_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def url_host(url: str) -> str | None:
    """The host a URL really connects to, or None when parsers could disagree about it.

    ``urlsplit`` and urllib3 (which requests connects with) read some URLs differently:
    ``https://evil.example\\.salesforce.com`` is ``evil.example\\.salesforce.com`` to the first and
    ``evil.example`` to the second (a backslash ends the authority, as in the WHATWG URL Standard,
    https://url.spec.whatwg.org/#host-state). So the host must be the same to both, hold no userinfo,
    and be plain DNS labels (RFC 1123, https://www.rfc-editor.org/rfc/rfc1123#page-13).
    """
    try:
        parsed = urlsplit(url)
        connects_to = urllib3.util.parse_url(url).host
    except ValueError:
        return None
    host = (parsed.hostname or "").lower()
    if not host or "@" in parsed.netloc or (connects_to or "").lower() != host:
        return None
    return host if all(_DNS_LABEL.fullmatch(label) for label in host.split(".")) else None


def session_host_allowed(instance_url: str, login_url: str) -> bool:
    """Only Salesforce's own hosts (and the configured login host) may receive a session id."""
    host = url_host(instance_url)
    if not instance_url.lower().startswith("https://") or host is None:
        return False
    return host == url_host(login_url) or any(host.endswith(suffix) for suffix in SESSION_HOST_SUFFIXES)


def client_for_job(ctx: Any) -> SalesforceClient:
    """The client a job uses: Connected App credentials, else the Outbound Message's session; an AppLink job
    its invoking user's session, then the Authorized User (:func:`_applink_source`).

    Raises:
        ApiLimitNear: the org is near its daily API limit (the job pauses, see ``_check_headroom``).
        SalesforcePermanentError: no usable credentials.
    """
    return _check_headroom(ctx, lambda: _new_client(ctx)) or _new_client(ctx)


def _new_client(ctx: Any) -> SalesforceClient:
    if ctx.envelope.source == APPLINK_SOURCE:
        session = http_session(ctx.settings)
        return _client(ctx.settings, ctx.connection, _applink_source(ctx, session), session)
    if ctx.settings.salesforce_auth_mode is not None:
        return integration_client(ctx.settings, ctx.connection)
    return _client(ctx.settings, ctx.connection, _session_source(ctx))


def integration_client(settings: Any, connection: Any) -> SalesforceClient:
    """A client as the integration user (the Connected App credentials), for work that is not one delivery's
    (the backfill's cursor and ``offload backfill``); it shares the workers' token and usage figures.

    Raises:
        SalesforcePermanentError: no Connected App credentials are configured (``NO_CREDENTIALS``).
    """
    if settings.salesforce_auth_mode is None:
        raise SalesforcePermanentError(
            "This needs the integration user's credentials: set SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET "
            "(or the JWT variables). An Outbound Message's session only serves the job it came with.",
            code="NO_CREDENTIALS")
    session = http_session(settings)
    return _client(settings, connection, SharedToken(settings, connection, session), session)


def _client(settings: Any, connection: Any, source: Callable[[bool], Token],
            session: TimeoutSession | None = None) -> SalesforceClient:
    session = session or http_session(settings)
    return SalesforceClient(source, api_version=settings.salesforce_api_version, session=session,
                            on_usage=lambda u: record_usage(connection, u), allowance=connection)


def _session_source(ctx: Any) -> Callable[[bool], Token]:
    """The Outbound Message's session, only towards a Salesforce host; it cannot be renewed."""
    settings = ctx.settings
    ref, instance_url = ctx.envelope.session_ref, ctx.envelope.instance_url or ""
    if not ref:
        raise SalesforcePermanentError(
            "No Salesforce credentials: set SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET (or the JWT "
            "variables), or send the session id with the Outbound Message and set OFFLOAD_SECRET_KEY.",
            code="NO_CREDENTIALS")
    if not session_host_allowed(instance_url, settings.salesforce_login_url):
        raise SalesforcePermanentError(
            f"The Outbound Message's PartnerUrl host {urlparse(instance_url).hostname!r} is not a Salesforce "
            "host; its session id will not be sent there.", code="UNTRUSTED_INSTANCE")
    session_id = load_session(ctx.connection, settings.secret_key, ref)
    if session_id is None:
        raise SalesforcePermanentError("The Outbound Message's session id expired before the job ran.",
                                       code="SESSION_EXPIRED")
    parsed = urlparse(instance_url)
    token = Token(access_token=session_id, instance_url=f"{parsed.scheme}://{parsed.netloc}")

    def source(refresh: bool) -> Token:
        if refresh:
            raise SalesforcePermanentError("The Outbound Message's session expired; it cannot be renewed.",
                                           code="INVALID_SESSION_ID")
        return token

    return source


APPLINK_SOURCE = "applink"
"""``Envelope.source`` of a job the AppLink door enqueued (``services/receiver/applink.py``)."""


def _applink_source(ctx: Any, session: requests.Session) -> Callable[[bool], Token]:
    """An AppLink job writes back as AppLink intends: as the invoking user, then as the Authorized User.

    First the invocation's own ``accessToken`` (``user`` / ``user-plus`` mode), decrypted from its
    reference, towards the context's ``orgDomainUrl`` only if that is a Salesforce host. When the token is
    gone (its reference outlived, or the org answers 401 ``INVALID_SESSION_ID``), the session of the
    Authorized User ``OFFLOAD_APPLINK_AUTHORIZATION`` from the AppLink API (``authorized-user`` mode,
    https://devcenter.heroku.com/articles/heroku-applink-user-modes), which must be of the same org.
    Never the Connected App: the context says which org and user the work is for.
    """
    settings, envelope = ctx.settings, ctx.envelope
    instance_url = envelope.instance_url or ""
    if not session_host_allowed(instance_url, settings.salesforce_login_url):
        raise SalesforcePermanentError(
            f"The AppLink context's orgDomainUrl host {urlparse(instance_url).hostname!r} is not a Salesforce "
            "host; its access token will not be sent there.", code="UNTRUSTED_INSTANCE")
    parsed = urlparse(instance_url)
    origin = f"{parsed.scheme}://{parsed.netloc}"
    context_token = load_session(ctx.connection, settings.secret_key, envelope.session_ref) \
        if envelope.session_ref and settings.secret_key else None

    def authorized_user() -> Token:
        if not settings.applink_authorization:
            raise SalesforcePermanentError(
                "The invoking user's AppLink access token expired before the job could write back, and no "
                "Authorized User is configured: set OFFLOAD_APPLINK_AUTHORIZATION to the developer name of an "
                "authorization of this org (heroku salesforce:authorizations:add), then retry the job.",
                code="SESSION_EXPIRED")
        user = fetch_authorization(settings, session, settings.applink_authorization)
        if envelope.org_id and user.org_id != envelope.org_id:
            raise SalesforcePermanentError(
                f"Authorized User {settings.applink_authorization!r} is of org {user.org_id}, but the job came "
                f"from org {envelope.org_id}: set OFFLOAD_APPLINK_AUTHORIZATION to an authorization of that org.",
                code="WRONG_ORG_AUTHORIZATION")
        if not session_host_allowed(user.instance_url, settings.salesforce_login_url):
            raise SalesforcePermanentError(
                f"The Authorized User's instance_url host {urlparse(user.instance_url).hostname!r} is not a "
                "Salesforce host.", code="UNTRUSTED_INSTANCE")
        event(logger, "applink context token expired: writing back as the Authorized User",
              authorization=settings.applink_authorization)
        return Token(access_token=user.access_token, instance_url=user.instance_url.rstrip("/"))

    def source(refresh: bool) -> Token:
        if context_token is not None and not refresh:
            return Token(access_token=context_token, instance_url=origin)
        return authorized_user()

    return source
