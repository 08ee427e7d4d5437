"""The X-Offload-Signature contract shared by the receiver and Salesforce.

One test vector, ``tests/fixtures/signature-vector.json``, is the contract:
``services.signing`` must produce and accept it, and so must the Apex side
(``OffloadClient.sign`` in ``apex/force-app/test/default/classes/OffloadClient_Tests.cls``
hard-codes the same secret, body and expected header; the Offload External
Credential formula computes the same HMAC). If this file changes, change the
Apex test too: ``test_apex_test_uses_the_same_vector`` checks that.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from services import signing

ROOT = Path(__file__).resolve().parent.parent
VECTOR_PATH = ROOT / "tests" / "fixtures" / "signature-vector.json"
APEX_TEST = ROOT / "apex" / "force-app" / "test" / "default" / "classes" / "OffloadClient_Tests.cls"


@pytest.fixture(scope="module")
def vector() -> dict[str, str]:
    return json.loads(VECTOR_PATH.read_text(encoding="utf-8"))


def test_sign_produces_the_shared_vector(vector: dict[str, str]) -> None:
    """sign(body, secret) equals the header value in the fixture."""
    body = vector["body"].encode("utf-8")
    assert signing.sign(body, vector["secret"]) == vector["expected"]


def test_vector_is_plain_hmac_sha256_hex(vector: dict[str, str]) -> None:
    """The fixture is 'sha256=' + lowercase hex HMAC-SHA256(secret, body): nothing else is mixed in."""
    digest = hmac.new(vector["secret"].encode("utf-8"), vector["body"].encode("utf-8"), hashlib.sha256)
    assert vector["expected"] == "sha256=" + digest.hexdigest()
    assert vector["expected"] == vector["expected"].lower()


def test_signature_matches_accepts_the_vector(vector: dict[str, str]) -> None:
    """The receiver accepts the vector, also among several secrets."""
    body = vector["body"].encode("utf-8")
    assert signing.signature_matches(body, vector["expected"], [vector["secret"]])
    assert signing.signature_matches(body, vector["expected"], ["rotated-out", vector["secret"]])


def test_signature_matches_refuses_a_one_byte_change(vector: dict[str, str]) -> None:
    """Changing one byte of the body (or of the signature) breaks the match."""
    body = vector["body"].encode("utf-8")
    changed_body = body.replace(b"2026", b"2027", 1)
    assert len(changed_body) == len(body) and changed_body != body
    assert not signing.signature_matches(changed_body, vector["expected"], [vector["secret"]])
    last = vector["expected"][-1]
    changed_sig = vector["expected"][:-1] + ("0" if last != "0" else "1")
    assert not signing.signature_matches(body, changed_sig, [vector["secret"]])
    assert not signing.signature_matches(body, vector["expected"], ["another-secret"])


def test_apex_test_uses_the_same_vector(vector: dict[str, str]) -> None:
    """The Apex test class hard-codes this very vector (secret, body, expected)."""
    if not APEX_TEST.exists():
        pytest.skip("apex/ tree not present")
    source = APEX_TEST.read_text(encoding="utf-8")
    apex_body = vector["body"].replace("\\", "\\\\").replace("'", "\\'")
    assert f"'{vector['secret']}'" in source
    assert f"'{apex_body}'" in source
    assert f"'{vector['expected']}'" in source


def test_the_external_credential_formula_produces_the_vector(vector: dict[str, str]) -> None:
    """The Offload External Credential's header formula, read from apex/ and evaluated by the emulator's
    formula evaluator, gives the vector: the shipped formula and services.signing agree."""
    from devkit.org.credentials import callout_headers

    body = vector["body"].encode("utf-8")
    headers = callout_headers("Offload", body, {"Secret": vector["secret"]})
    assert headers == [(signing.SIGNATURE_HEADER, vector["expected"])]
    assert headers[0][1] == signing.sign(body, vector["secret"])
