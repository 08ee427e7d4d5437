"""Salesforce sessions a job borrows from its caller, kept encrypted and out of job payloads.

Two callers hand Offload a session to write back with: an Outbound Message's ``SessionId`` (the "Send
Session ID" option, used when no Connected App credentials are configured) and an AppLink invocation's
``accessToken`` (the invoking user's session, :mod:`services.salesforce.applink`). Either is a bearer
credential for the org, so it never sits in Redis in clear text and never in a job's arguments (the rq
dashboard shows those): it is encrypted with Fernet under a key derived from ``OFFLOAD_SECRET_KEY``,
stored under a random reference with a short expiry, and the job carries only the reference
(``sessionRef`` in the envelope).
"""

from __future__ import annotations

import base64
import hashlib
import secrets

import redis
from cryptography.fernet import Fernet, InvalidToken

from services import keys

SESSION_PREFIX = keys.SESSION_PREFIX
SESSION_TTL = 2 * 3600
"""Seconds; Salesforce sessions last 2 hours by default (Setup > Session Settings)."""


def _fernet(secret_key: str) -> Fernet:
    key = base64.urlsafe_b64encode(hashlib.sha256(b"offload-session:" + secret_key.encode()).digest())
    return Fernet(key)


def store_session(connection: redis.Redis | redis.client.Pipeline, secret_key: str, session_id: str,
                  ttl: int = SESSION_TTL) -> str:
    """Encrypt and store a session id (or an AppLink access token); return the reference to put in the job."""
    ref = secrets.token_urlsafe(18)
    connection.set(SESSION_PREFIX + ref, _fernet(secret_key).encrypt(session_id.encode()), ex=ttl)
    return ref


def load_session(connection: redis.Redis, secret_key: str, ref: str) -> str | None:
    """The session id for a reference, or None if it expired or the key changed."""
    token = connection.get(SESSION_PREFIX + ref)
    if token is None:
        return None
    try:
        return _fernet(secret_key).decrypt(token).decode()
    except InvalidToken:
        return None
