"""The org's outgoing JSON callouts: what Apex ``Http.send`` and a Flow HTTP Callout action send.

Apex (Apex Developer Guide, "Callout Limits and Limitations",
https://developer.salesforce.com/docs/atlas.en-us.apexcode.meta/apexcode/apex_callouts_timeouts.htm):
- default timeout 10 s; a per-callout timeout from 1 ms to 120,000 ms, anything else is
  rejected (the exact exception text is not confirmed by Salesforce's documentation; we raise
  ``ValueError`` with the wording Apex developers quote).
- request/response size 6 MB synchronous, 12 MB asynchronous (Apex governor limits). Whether
  "6 MB" means 6,000,000 or 6 MiB is not confirmed by Salesforce's documentation; Apex's
  "String length exceeds maximum: 6000000" suggests decimal, so that is used
  (``SYNC_LIMIT_BYTES``/``ASYNC_LIMIT_BYTES``).
- a timeout, a refused connection or a TLS failure is a ``CalloutException`` in Apex; here
  ``CalloutResult(status=0, fault=True, error=...)``. HTTP 4xx/5xx are *not* exceptions in
  Apex: the code reads ``getStatusCode()``, so ``fault`` stays False.
- Apex does not follow redirects (widely reported, not confirmed by Salesforce's
  documentation); a 3xx is returned as is.
- default headers, as observed from Apex callouts (echo-service captures):
  ``User-Agent: SFDC-Callout/<class API version>``, a Java-style ``Accept``, ``Cache-Control``/``Pragma: no-cache``; no
  ``Accept-Encoding``. ``Content-Type`` is whatever the Apex code sets; Offload's Apex sets
  ``application/json``.

Flow HTTP Callout (Salesforce Help on HTTP Callout considerations,
https://help.salesforce.com/s/articleView?id=platform.flow_http_callout_considerations.htm, and
the External Services limits,
https://help.salesforce.com/s/articleView?id=platform.external_services_schema_def_limits.htm):
- any status >= 300 goes to the fault path; an empty body must be ``{}``/``[]`` (an empty
  string fails); JSON nesting is limited to 15 levels (as reported by users quoting the help)
  and lists must be homogeneous; External Service callouts time out after 120 s (fixed,
  ``FLOW_TIMEOUT_S``).
- the headers a Flow callout sends are not captured anywhere public (not confirmed by
  Salesforce's documentation): the Apex defaults are used, since External Services run on the
  same callout stack.

Credentials: ``secret`` and ``api_key`` stand for the authentication parameters an admin adds to the
principals in Setup (``Secret`` on ``Offload``, ``ApiKey`` on ``Offload_ApiKey``, apex/README.md). The
headers are not computed here: the custom-header formulas of the External Credentials in
``apex/force-app/main/default`` are read and evaluated (:mod:`devkit.org.credentials`,
:mod:`devkit.org.formula`) over exactly the bytes sent, the way the org evaluates them at callout time. So a
change to a formula changes what the receiver gets, and a formula the receiver does not agree with fails
the tests. The JSON is serialized once, compactly, and those bytes are the ``$Credential.<name>.Body``.

``GET /jobs/<jobId>`` (:func:`apex_get`, :func:`flow_get`) has no body, so ``Offload``'s formula signs an
empty Blob: the same value for every GET, which the receiver refuses. Salesforce can send getJob through
``Offload_ApiKey`` (``Authorization: Bearer``), which is what apex/README.md documents.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from urllib3.util import SKIP_HEADER

from devkit.org.credentials import callout_headers

APEX_ACCEPT = "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2"
APEX_DEFAULT_TIMEOUT_S = 10.0
APEX_MAX_TIMEOUT_MS = 120_000
SYNC_LIMIT_BYTES = 6_000_000
"""Maximum callout request or response size in synchronous Apex (Apex governor limits)."""
ASYNC_LIMIT_BYTES = 12_000_000
"""Maximum callout request or response size in asynchronous Apex (Queueable, @future, Batch)."""
FLOW_TIMEOUT_S = 120.0
"""External Service (Flow HTTP Callout) timeout, not configurable in Flow (C)."""
FLOW_MAX_JSON_DEPTH = 15
SIGNED_NAMED_CREDENTIAL = "Offload"
"""Named Credential whose External Credential signs the body (principal parameter ``Secret``)."""
API_KEY_NAMED_CREDENTIAL = "Offload_ApiKey"
"""Named Credential whose External Credential sends ``Authorization: Bearer`` (principal parameter ``ApiKey``)."""


@dataclass(frozen=True)
class CalloutResult:
    """What the calling Apex or Flow sees: an HTTP response, or (``status=0``) an exception."""

    status: int
    body: bytes
    headers: dict[str, str]
    elapsed_ms: float
    fault: bool
    error: str | None


def apex_callout(
    url: str,
    payload: dict,
    *,
    secret: str | None = None,
    api_key: str | None = None,
    timeout_s: float = APEX_DEFAULT_TIMEOUT_S,
    verify: bool | str = True,
    api_version: str = "62.0",
    idempotency_key: str | None = None,
    asynchronous: bool = False,
    source_dir: Path | None = None,
) -> CalloutResult:
    """POST ``payload`` as JSON the way ``new Http().send(req)`` does from Offload's Apex.

    Args:
        timeout_s: ``req.setTimeout(ms) / 1000``; 1 ms to 120 s, default 10 s ("Callout Limits and Limitations").
        asynchronous: the callout runs in async Apex, so the 12 MB size limit applies, not 6 MB.
        source_dir: the SFDX ``force-app/main/default`` whose credentials are used (default: this checkout's).

    Raises:
        ValueError: timeout out of range, or the request body over the size limit (see the module docstring).
        FormulaError: a credential's header formula fails (it is a ValueError too).
    """
    if not 1 <= timeout_s * 1000 <= APEX_MAX_TIMEOUT_MS:
        raise ValueError("Timeout value must be between 1 and 120000 milliseconds")
    body = _serialize(payload)
    limit = ASYNC_LIMIT_BYTES if asynchronous else SYNC_LIMIT_BYTES
    if len(body) > limit:
        kind = "asynchronous" if asynchronous else "synchronous"
        raise ValueError(
            f"callout request is {len(body)} bytes; the {kind} Apex limit is "
            f"{limit // 1_000_000} MB ({limit} bytes)"
        )
    headers = _headers(body, api_version=api_version, secret=secret, api_key=api_key, source_dir=source_dir)
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return _send("POST", url, body, headers, timeout_s=timeout_s, verify=verify, max_response=limit)


def apex_get(
    url: str,
    *,
    secret: str | None = None,
    api_key: str | None = None,
    timeout_s: float = APEX_DEFAULT_TIMEOUT_S,
    verify: bool | str = True,
    api_version: str = "62.0",
    source_dir: Path | None = None,
) -> CalloutResult:
    """``req.setMethod('GET')`` without a body, through the credentials ``secret``/``api_key`` stand for.

    With ``secret`` the Offload formula signs the empty body, as the org would (see the module docstring).
    """
    if not 1 <= timeout_s * 1000 <= APEX_MAX_TIMEOUT_MS:
        raise ValueError("Timeout value must be between 1 and 120000 milliseconds")
    headers = _headers(b"", api_version=api_version, secret=secret, api_key=api_key, source_dir=source_dir,
                       content_type=None)
    return _send("GET", url, None, headers, timeout_s=timeout_s, verify=verify, max_response=SYNC_LIMIT_BYTES)


def flow_callout(
    url: str,
    payload: dict,
    *,
    secret: str | None = None,
    api_key: str | None = None,
    verify: bool | str = True,
    source_dir: Path | None = None,
) -> CalloutResult:
    """POST ``payload`` as a Flow HTTP Callout action would; status >= 300 takes the fault path (C).

    ``secret`` and ``api_key`` stand for headers the Named/External Credential adds (the action
    itself cannot set headers, C). A 2xx reply whose body is empty or not JSON also faults:
    Flow must parse it into the generated Apex-defined type (C: "never an empty string").

    Raises:
        ValueError: the payload nests deeper than 15 levels or has a mixed-type list (C), which
            the action's generated types cannot express.
    """
    _check_flow_shape(payload)
    body = _serialize(payload)
    headers = _headers(body, api_version="62.0", secret=secret, api_key=api_key, source_dir=source_dir)
    return _flow_outcome(_send("POST", url, body, headers, timeout_s=FLOW_TIMEOUT_S, verify=verify,
                               max_response=None))


def flow_get(
    url: str,
    *,
    secret: str | None = None,
    api_key: str | None = None,
    verify: bool | str = True,
    source_dir: Path | None = None,
) -> CalloutResult:
    """An External Services GET action (``getJob``): no body; status >= 300 or a non-JSON reply faults."""
    headers = _headers(b"", api_version="62.0", secret=secret, api_key=api_key, source_dir=source_dir,
                       content_type=None)
    return _flow_outcome(_send("GET", url, None, headers, timeout_s=FLOW_TIMEOUT_S, verify=verify,
                               max_response=None))


def _flow_outcome(result: CalloutResult) -> CalloutResult:
    """What the flow sees: faults for status >= 300, a body that is not JSON, or JSON nested past 15 levels."""
    if result.fault:
        return result
    error = None
    if result.status >= 300:
        error = f"HTTP {result.status}: status >= 300 takes the flow's fault path"
    else:
        try:
            parsed = json.loads(result.body)
        except ValueError:
            error = "response body is not JSON (an empty response must be {} or [])"
        else:
            if _depth(parsed) > FLOW_MAX_JSON_DEPTH:
                error = f"response JSON nests deeper than {FLOW_MAX_JSON_DEPTH} levels"
    if error is None:
        return result
    return CalloutResult(result.status, result.body, result.headers, result.elapsed_ms, True, error)


def _serialize(payload: Any) -> bytes:
    """Compact JSON, like Apex ``JSON.serialize``: no spaces, non-ASCII left as UTF-8."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _headers(body: bytes, *, api_version: str, secret: str | None, api_key: str | None,
             source_dir: Path | None, content_type: str | None = "application/json") -> dict[str, str]:
    """Apex's default headers (as observed from Apex callouts), Content-Type, then each credential's custom
    headers, evaluated from its metadata over ``body``."""
    headers = {
        "User-Agent": f"SFDC-Callout/{api_version}",
        "Accept": APEX_ACCEPT,
        "Cache-Control": "no-cache",
        "Pragma": "no-cache",
    }
    if content_type is not None:
        headers["Content-Type"] = content_type
    if secret is not None:
        headers.update(callout_headers(SIGNED_NAMED_CREDENTIAL, body, {"Secret": secret}, source_dir))
    if api_key is not None:
        headers.update(callout_headers(API_KEY_NAMED_CREDENTIAL, body, {"ApiKey": api_key}, source_dir))
    return headers


def _send(
    method: str,
    url: str,
    body: bytes | None,
    headers: dict[str, str],
    *,
    timeout_s: float,
    verify: bool | str,
    max_response: int | None,
) -> CalloutResult:
    """One request with a *total* deadline, as Apex's timeout covers the whole callout.

    requests' own timeout is per socket operation, so the body is streamed and the deadline
    checked between chunks. Errors become ``status=0, fault=True`` with Java-style messages
    (wording not confirmed by Salesforce's documentation, but "Read timed out" is Java's
    SocketTimeoutException text).
    """
    started = time.perf_counter()
    deadline = started + timeout_s

    def failed(error: str) -> CalloutResult:
        return CalloutResult(0, b"", {}, round((time.perf_counter() - started) * 1000, 1), True, error)

    try:
        with requests.Session() as session:
            session.trust_env = False
            session.headers.clear()  # only the headers Apex sends: no requests Accept-Encoding/UA
            # http.client would add "Accept-Encoding: identity"; Apex's Java client sends none.
            reply = session.request(
                method,
                url,
                data=body,
                headers={"Accept-Encoding": SKIP_HEADER, **headers},
                timeout=(timeout_s, timeout_s),
                verify=verify,
                allow_redirects=False,
                stream=True,
            )
            chunks, size = [], 0
            with reply:
                for chunk in reply.iter_content(64 * 1024):
                    size += len(chunk)
                    if max_response is not None and size > max_response:
                        return failed(f"Exceeded max size limit of {max_response} with response size {size}+")
                    if time.perf_counter() > deadline:
                        return failed("Read timed out")
                    chunks.append(chunk)
    except requests.Timeout as exc:
        return failed("connect timed out" if isinstance(exc, requests.ConnectTimeout) else "Read timed out")
    except requests.exceptions.SSLError as exc:
        return failed(f"javax.net.ssl.SSLHandshakeException: {exc}")
    except requests.RequestException as exc:
        return failed(f"IO Exception: {'Connection refused' if 'refused' in str(exc).lower() else exc}")
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    if elapsed > timeout_s * 1000:
        return failed("Read timed out")
    return CalloutResult(reply.status_code, b"".join(chunks), dict(reply.headers), elapsed, False, None)


def _check_flow_shape(payload: Any) -> None:
    """Reject what the action's generated types cannot carry: deep nesting and mixed lists (C)."""
    if _depth(payload) > FLOW_MAX_JSON_DEPTH:
        raise ValueError(f"Flow HTTP Callout JSON can nest at most {FLOW_MAX_JSON_DEPTH} levels")
    stack = [payload]
    while stack:
        value = stack.pop()
        items = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else []
        if isinstance(value, list):
            kinds = {_kind(item) for item in value if item is not None}
            if len(kinds) > 1:
                raise ValueError(f"Flow HTTP Callout lists must hold one type, got {sorted(kinds)}")
        stack.extend(items)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0
