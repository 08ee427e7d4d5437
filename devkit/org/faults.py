"""Fault injection: make chosen endpoints fail or slow down, the way a real org sometimes does.

A rule matches a request path by glob (``*/sobjects/Account/*``) or, with a ``re:`` prefix,
by regular expression, optionally restricted to one HTTP method. It fires for the next
``count`` matches, or with ``probability`` on each match, or always. Errors are the
documented ones a Python worker must survive: 503 SERVER_UNAVAILABLE, 403
REQUEST_LIMIT_EXCEEDED, 400 UNABLE_TO_LOCK_ROW and 401 INVALID_SESSION_ID (REST API guide,
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm).
"""

from __future__ import annotations

import fnmatch
import itertools
import random
import re
import threading
from dataclasses import asdict, dataclass, field

from .sferrors import FAULT_ERRORS


@dataclass
class FaultRule:
    """One injected fault; ``error`` None with a ``delay`` only slows the reply down."""

    pattern: str
    error: str | None = None
    method: str | None = None
    count: int | None = None
    probability: float | None = None
    delay: float = 0.0
    id: int = 0
    fired: int = 0
    _regex: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.error is not None and self.error not in FAULT_ERRORS:
            raise ValueError(f"unknown fault error {self.error!r}; choose from {sorted(FAULT_ERRORS)}")
        if self.error is None and not self.delay:
            raise ValueError("a fault needs an error, a delay, or both")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1")
        source = self.pattern[3:] if self.pattern.startswith("re:") else fnmatch.translate(self.pattern)
        self._regex = re.compile(source)
        self.method = self.method.upper() if self.method else None

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method.upper():
            return False
        if self.pattern.startswith("re:"):
            return self._regex.search(path) is not None
        return self._regex.match(path) is not None

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("_regex", None)
        data["remaining"] = None if self.count is None else self.count - self.fired
        return data


class FaultInjector:
    """The active fault rules; ``pick`` consumes a matching rule for one request."""

    def __init__(self, rng: random.Random | None = None):
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._rng = rng or random.Random()

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            rule.id = next(self._ids)
            self._rules.append(rule)
        return rule

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def pick(self, method: str, path: str) -> FaultRule | None:
        """The first rule that fires for this request (used-up count rules are dropped)."""
        with self._lock:
            for rule in self._rules:
                if not rule.matches(method, path):
                    continue
                if rule.probability is not None and self._rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                if rule.count is not None and rule.fired >= rule.count:
                    self._rules.remove(rule)
                return rule
        return None
