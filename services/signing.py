"""The callout signature: ``X-Offload-Signature: sha256=<hex>``.

The signature is the lowercase hex HMAC-SHA256 of the *raw* request body,
keyed with one of the shared secrets in ``OFFLOAD_CALLOUT_SECRETS``. Salesforce
can compute exactly this without Apex ever reading the secret: an External
Credential custom header formula
``{!'sha256=' & HEX(HMAC('SHA-256', $Credential.Offload.Body, BLOB($Credential.Offload.Secret)))}``
(see ``apex/README.md``), or in Apex ``EncodingUtil.convertToHex(Crypto.generateMac('hmacSHA256',
Blob.valueOf(body), Blob.valueOf(secret)))``. The shared test vector both
sides are checked against lives in ``tests/fixtures/signature-vector.json``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

SIGNATURE_HEADER = "X-Offload-Signature"
SCHEME = "sha256="


def sign(body: bytes, secret: str) -> str:
    """Return the header value (``sha256=<hex>``) for ``body`` under ``secret``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return SCHEME + digest


def signature_matches(body: bytes, header_value: str, secrets: Iterable[str]) -> bool:
    """True when ``header_value`` is a valid signature of ``body`` under any of ``secrets``.

    Every secret is tried (no early exit on the first mismatch) and each
    comparison is constant-time, so timing tells an attacker nothing about
    which secret, or how much of the digest, matched.
    """
    value = header_value.strip()
    if not value.lower().startswith(SCHEME):
        return False
    # Compared as bytes: hmac.compare_digest refuses str with non-ASCII characters (TypeError), and a
    # header is whatever the sender put there (WSGI hands it over as latin-1).
    candidate = (SCHEME + value[len(SCHEME):].strip().lower()).encode("utf-8", "surrogateescape")
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(sign(body, secret).encode("ascii"), candidate)
    return matched
