"""Who is calling: callout signatures and API keys, and Outbound Message tokens and org ids.

Callouts (Apex, Flow) prove themselves one of two ways:

* ``X-Offload-Signature: sha256=<hex>``: HMAC-SHA256 of the raw body with a
  secret from ``OFFLOAD_CALLOUT_SECRETS`` (see :mod:`services.signing`). A
  request without a body (``GET /jobs/<id>``) signs its path instead; Salesforce cannot produce that (the
  External Credential formula can only reach the body, ``$Credential.<name>.Body``), so it is for scripts,
  and an org's ``getJob`` uses the API key (apex/README.md, "getJob").
* ``Authorization: Bearer <key>`` with a key from ``OFFLOAD_API_KEYS``.

Outbound Messages cannot sign anything, and the org id they carry is public (Web-to-Lead forms
publish it as ``oid``). So the Endpoint URL an admin configures carries a secret,
``/outbound/<process>?token=<one of OFFLOAD_OUTBOUND_TOKENS>``, checked before the envelope is parsed;
then the org id must be one of ``OFFLOAD_ORG_IDS``, as Salesforce's "Considerations for Security"
advises (https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_security.htm).
The access log records paths without query strings (``gunicorn_conf.py``), so the token is not logged.

A signed body must carry ``sentAt`` (Apex's ``OffloadClient`` always sends it), and one more than
``OFFLOAD_SIGNATURE_MAX_AGE`` seconds from now is refused, which bounds replays of a captured
request; within that window a replay is a duplicate, because a signed request is deduped on its
payload, not on headers (``callouts.py``). Every
comparison is constant-time, and no error message ever echoes secret material.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

from flask import Request

from services.errors import CallerRejected, InvalidRequest, WrongOrg
from services.receiver.intake import header
from services.settings import Settings
from services.sfids import is_valid_id, to_18
from services.signing import SIGNATURE_HEADER, signature_matches


def signed_message(request: Request, body: bytes) -> bytes:
    """What the signature covers: the raw body, or the path for a request with no body."""
    return body if body else request.path.encode("utf-8")


def authenticate_callout(request: Request, body: bytes, settings: Settings) -> str:
    """Check the caller's signature or API key; return how it authenticated (for logs).

    Raises:
        CallerRejected: with code MISSING_CREDENTIALS, SIGNATURE_MISMATCH or API_KEY_MISMATCH.
    """
    signature = header(request, SIGNATURE_HEADER)
    authorization = header(request, "Authorization") or ""
    if signature is not None:
        if not settings.callout_secrets:
            raise CallerRejected(
                "Signed callouts are not enabled here: set OFFLOAD_CALLOUT_SECRETS on the Offload app.",
                code="SIGNATURE_NOT_CONFIGURED",
            )
        if signature_matches(signed_message(request, body), signature, settings.callout_secrets):
            return "signature"
        if not body:
            raise CallerRejected(
                f"A request without a body cannot be signed by Salesforce: the Offload External Credential's "
                f"{SIGNATURE_HEADER} formula signs the body, so a GET gets one value every time and is refused. "
                "Call GET /jobs/<id> through the Offload_ApiKey Named Credential (Authorization: Bearer, one of "
                "OFFLOAD_API_KEYS); a signature over the path is for scripts.",
                code="SIGNATURE_MISMATCH",
            )
        raise CallerRejected(
            f"The {SIGNATURE_HEADER} header does not match the body. Check that the External Credential's "
            "secret equals one of OFFLOAD_CALLOUT_SECRETS and that the body is signed exactly as sent.",
            code="SIGNATURE_MISMATCH",
        )
    if authorization.lower().startswith("bearer "):
        presented = authorization[7:].strip().encode("utf-8")
        matched = False
        for key in settings.api_keys:
            matched |= hmac.compare_digest(presented, key.encode("utf-8"))
        if matched:
            return "api_key"
        raise CallerRejected(
            "The Bearer key is not one of OFFLOAD_API_KEYS.", code="API_KEY_MISMATCH"
        )
    raise CallerRejected(
        f"Missing credentials: send an {SIGNATURE_HEADER} header (HMAC-SHA256 of the body) "
        "or 'Authorization: Bearer <key>'.",
        code="MISSING_CREDENTIALS",
    )


OUTBOUND_TOKEN_PARAMETER = "token"


def check_outbound_token(request: Request, settings: Settings) -> None:
    """Require ``?token=`` to match one of ``OFFLOAD_OUTBOUND_TOKENS`` (constant time, every token compared).

    Raises:
        CallerRejected: with code MISSING_OUTBOUND_TOKEN or OUTBOUND_TOKEN_MISMATCH.
    """
    presented = request.args.getlist(OUTBOUND_TOKEN_PARAMETER)
    if not settings.outbound_tokens:
        raise CallerRejected(
            "Outbound Messages are not enabled here: set OFFLOAD_OUTBOUND_TOKENS on the Offload app.",
            code="OUTBOUND_TOKEN_NOT_CONFIGURED",
        )
    if len(presented) != 1 or not presented[0]:
        raise CallerRejected(
            f"The Endpoint URL carries {'no' if not presented else 'more than one'} token: end it with "
            f"?{OUTBOUND_TOKEN_PARAMETER}=<one of OFFLOAD_OUTBOUND_TOKENS> (Setup > Outbound Messages > Edit).",
            code="MISSING_OUTBOUND_TOKEN",
        )
    candidate = presented[0].encode("utf-8")
    matched = False
    for token in settings.outbound_tokens:
        matched |= hmac.compare_digest(candidate, token.encode("utf-8"))
    if not matched:
        raise CallerRejected(
            f"The Endpoint URL's {OUTBOUND_TOKEN_PARAMETER} is not one of OFFLOAD_OUTBOUND_TOKENS: copy the "
            "current value into the Outbound Message's Endpoint URL (Setup > Outbound Messages > Edit).",
            code="OUTBOUND_TOKEN_MISMATCH",
        )


def require_sent_at(payload: dict[str, Any]) -> None:
    """A signed body must say when it was signed: without ``sentAt`` a captured request replays forever."""
    if not isinstance(payload.get("sentAt"), str):
        raise InvalidRequest(
            "A signed request must carry sentAt (the time it was signed, ISO 8601 UTC, e.g. "
            "2026-01-01T00:00:00Z) in its body: the receiver refuses signed bodies older than "
            "OFFLOAD_SIGNATURE_MAX_AGE seconds.",
            code="VALIDATION_FAILED",
            fields={"sentAt": ["Required in a signed request."]},
        )


def check_fresh(payload: Any, settings: Settings, now: datetime | None = None) -> None:
    """Refuse a body whose ``sentAt`` is too far from now (stale or from the future)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("sentAt"), str):
        return
    try:
        sent = datetime.fromisoformat(payload["sentAt"].replace("Z", "+00:00"))
    except ValueError:
        return  # the schema reports the malformed value with its field name
    if sent.tzinfo is None:
        return
    skew = abs(((now or datetime.now(UTC)) - sent).total_seconds())
    if skew > settings.signature_max_age:
        raise CallerRejected(
            f"sentAt is {int(skew)} seconds from the receiver's clock, more than the "
            f"{settings.signature_max_age} allowed (OFFLOAD_SIGNATURE_MAX_AGE): send the current time.",
            code="STALE_REQUEST",
            fields={"sentAt": ["Too far from now."]},
        )


def check_org(organization_id: str, settings: Settings) -> str:
    """Return the 18-character org id if it is allowed; raise :class:`WrongOrg` otherwise."""
    if not is_valid_id(organization_id) or not organization_id.startswith("00D"):
        raise WrongOrg(f"OrganizationId {organization_id!r} is not a Salesforce org id.")
    org = to_18(organization_id)
    if org not in settings.org_ids:
        raise WrongOrg(
            f"Org {org} is not allowed to send to this Offload app; add it to OFFLOAD_ORG_IDS if it should be."
        )
    return org
