"""Outbound Message session ids, kept encrypted and out of job payloads.

When no Connected App credentials are configured, a job started by an
Outbound Message may call back with the message's ``SessionId`` (the "Send
Session ID" option). A session id is a bearer credential for the org, so it
never sits in Redis in clear text and never in a job's arguments (the rq
dashboard shows those): it is encrypted with Fernet under a key derived from
``OFFLOAD_SECRET_KEY``, stored under a random reference with a short expiry,
and the job carries only the reference.
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


def store_session(connection: redis.Redis | redis.client.Pipeline, secret_key: str, session_id: str) -> str:
    """Encrypt and store a session id; return the reference to put in the job."""
    ref = secrets.token_urlsafe(18)
    connection.set(SESSION_PREFIX + ref, _fernet(secret_key).encrypt(session_id.encode()), ex=SESSION_TTL)
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
