"""Helpers for the org emulator tests (a module name no other test directory uses)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests

from devkit.org import EmulatedOrg

_LOCAL_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "salesforce"
_SHARED_FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "reference" / "fixtures"

API = "62.0"


def fixture_path(name: str) -> Path:
    """Prefer the copy in tests/fixtures/salesforce; fall back to the shared reference."""
    local = _LOCAL_FIXTURES / name
    return local if local.exists() else _SHARED_FIXTURES / name


def load_fixture(name: str) -> Any:
    return json.loads(fixture_path(name).read_text())


def same_shape(actual: Any, expected: Any) -> bool:
    """Key sets and JSON types match recursively (lists: compare item shapes pairwise)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and set(actual) == set(expected) and all(
            same_shape(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(
            same_shape(a, e) for a, e in zip(actual, expected, strict=True))
    if isinstance(expected, bool) or expected is None:
        return type(actual) is type(expected)
    if isinstance(expected, int | float):
        return isinstance(actual, int | float) and not isinstance(actual, bool)
    return isinstance(actual, type(expected))


class Api:
    """Tiny REST client for the emulator: base URL, bearer header, CA trust."""

    def __init__(self, org: EmulatedOrg, token: str):
        self.org = org
        self.token = token
        self.http = org.session()
        self.base = f"{org.base_url}/services/data/v{API}"

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **(extra or {})}

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = self.headers(kwargs.pop("headers", None))
        url = path if path.startswith("https://") else self.base + path
        return self.http.request(method, url, headers=headers, timeout=10, **kwargs)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> requests.Response:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", path, **kw)

    def admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, f"{self.org.base_url}/_emulator{path}", timeout=10, **kwargs)
