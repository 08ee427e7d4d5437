"""Which sObject types exist in the emulated org, their key prefixes, and new record Ids.

Salesforce Ids start with a 3-character key prefix naming the object (001 Account,
068 ContentVersion, ...). Standard prefixes below are the well-known ones (ContentVersion 068
and ContentDocument 069 are confirmed by captures; 06A ContentDocumentLink and the others are
widely published; ContentVersion's object reference:
https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_contentversion.htm
). Custom objects get a prefix derived from their name, so it is
stable across restarts, in the ``aXX`` range real orgs use; platform events share ``e00``
(the returned event id "isn't always unique":
https://developer.salesforce.com/docs/atlas.en-us.platform_events.meta/platform_events/platform_events_publish_api.htm).
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import threading

from services import sfids

from . import schema
from .config import OrgConfig

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

STANDARD_PREFIXES = sfids.STANDARD_PREFIXES

EVENT_PREFIX = "e00"
#: Instance ("pod") characters after the prefix, as in the fixtures' ``0015g00000QwErTAAV``.
_POD = "5g"


def _base62(n: int, width: int) -> str:
    out = ""
    for _ in range(width):
        n, rem = divmod(n, 62)
        out = _BASE62[rem] + out
    return out


def is_custom_object(name: str) -> bool:
    return name.lower().endswith("__c")


def is_platform_event(name: str) -> bool:
    return name.lower().endswith("__e")


class SObjectCatalog:
    """Resolves sObject names (case-insensitively) to their canonical name and key prefix."""

    def __init__(self, config: OrgConfig):
        self._config = config
        self._prefixes: dict[str, str] = {**STANDARD_PREFIXES, **config.extra_sobjects}
        self._canonical: dict[str, str] = {n.lower(): n for n in self._prefixes}
        self._lock = threading.Lock()

    def resolve(self, name: str) -> str | None:
        """The canonical name of an sObject type that exists in the org, else None."""
        lowered = name.lower()
        with self._lock:
            if lowered in self._canonical:
                return self._canonical[lowered]
        if is_platform_event(name):
            allowed = self._config.platform_events
        elif is_custom_object(name):
            allowed = self._config.custom_objects
        else:
            return None
        if allowed is None:
            deployed = schema.deployed().object(name)
            if deployed is None:
                return None  # not in apex/force-app: the org does not have it
            name = deployed.name
        else:
            match = next((a for a in allowed if a.lower() == lowered), None)
            if match is None:
                return None
            name = match
        with self._lock:
            self._canonical.setdefault(lowered, name)
            if lowered not in {n.lower() for n in self._prefixes}:
                self._prefixes[name] = EVENT_PREFIX if is_platform_event(name) else self._derive(name)
            return self._canonical[lowered]

    def prefix(self, sobject: str) -> str:
        """Key prefix of an sObject type that exists (KeyError otherwise)."""
        if self.resolve(sobject) is None:
            raise KeyError(sobject)
        with self._lock:
            return self._prefixes[self._canonical[sobject.lower()]]

    def type_for_prefix(self, prefix: str) -> str | None:
        """The sObject type owning a key prefix (events excluded: they share one)."""
        with self._lock:
            return next((n for n, p in self._prefixes.items() if p == prefix and p != EVENT_PREFIX), None)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._prefixes)

    def _derive(self, name: str) -> str:
        """A stable ``aXX`` prefix for a custom object; probes on collision (caller holds lock)."""
        taken = set(self._prefixes.values())
        digest = int.from_bytes(hashlib.sha256(name.lower().encode()).digest()[:8], "big")
        for step in itertools.count():
            candidate = "a" + _base62(digest + step, 2)
            if candidate not in taken:
                return candidate
        raise AssertionError("unreachable")


class IdFactory:
    """Mints 18-character Ids: prefix + pod + a 10-character counter + checksum.

    The counter starts at a random offset so Ids from two emulator runs rarely collide.
    """

    def __init__(self) -> None:
        self._counter = itertools.count(secrets.randbelow(62**6) + 62**4)
        self._lock = threading.Lock()

    def new_id(self, prefix: str) -> str:
        with self._lock:
            n = next(self._counter)
        id15 = prefix + _POD + _base62(n, 10)
        return sfids.to_18(id15)
