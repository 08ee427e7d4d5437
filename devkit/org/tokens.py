"""Access tokens the emulated org has issued, and when they stop working.

Salesforce access tokens look like ``<15-char org id>!<opaque>`` (fixtures
oauth-token-response-*.json) and carry no ``expires_in``: they live for the run-as user's
session timeout, and an expired one makes every REST call answer 401 INVALID_SESSION_ID
(https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_client_credentials_flow.htm). Real sessions time
out after *inactivity*; the emulator expires them a
fixed time after issue unless ``OrgConfig.token_ttl_sliding`` is set.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import asdict, dataclass

from .config import OrgConfig


@dataclass
class Token:
    """One issued session."""

    access_token: str
    username: str
    grant_type: str
    issued_at: float
    expires_at: float
    uses: int = 0

    def summary(self) -> dict:
        """Admin view: the token itself is shown, this is a local dev org."""
        data = asdict(self)
        data["expired"] = time.time() >= self.expires_at
        return data


class TokenStore:
    """Issues, checks and expires access tokens (thread-safe)."""

    def __init__(self, config: OrgConfig):
        self._config = config
        self._tokens: dict[str, Token] = {}
        self._lock = threading.Lock()

    def issue(self, username: str, grant_type: str) -> Token:
        now = time.time()
        value = self._config.org_id[:15] + "!AQ8AQ" + secrets.token_urlsafe(72).replace("-", ".")
        token = Token(value, username, grant_type, now, now + self._config.token_ttl_seconds)
        with self._lock:
            self._tokens[value] = token
        return token

    def check(self, value: str) -> Token | None:
        """The live token for ``value``, or None if unknown or expired (counts one use)."""
        now = time.time()
        with self._lock:
            token = self._tokens.get(value)
            if token is None or now >= token.expires_at:
                return None
            token.uses += 1
            if self._config.token_ttl_sliding:
                token.expires_at = now + self._config.token_ttl_seconds
            return token

    def expire_all(self) -> int:
        """Make every issued token invalid now (admin "expire tokens"); returns how many were live."""
        now = time.time()
        with self._lock:
            live = [t for t in self._tokens.values() if t.expires_at > now]
            for token in live:
                token.expires_at = now
            return len(live)

    def all(self) -> list[Token]:
        with self._lock:
            return list(self._tokens.values())

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()
