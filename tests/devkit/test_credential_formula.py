"""The emulator signs with the External Credential's formula from apex/, and the receiver is the judge.

The formula is the one deployed (``externalCredentials/Offload.externalCredential-meta.xml`` in apex/),
evaluated by :mod:`devkit.org.formula` with the functions Salesforce documents ("Named Credential Formula
Functions", https://developer.salesforce.com/docs/platform/named-credentials/references/named-credentials-reference/nc-formula-functions.html).
A changed formula (another encoding, another order) must make the real receiver, over a real socket,
answer 401; the shipped one must be accepted. ``GET /jobs/<id>`` goes through ``Offload_ApiKey``.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from devkit.org.callouts import apex_callout, apex_get, flow_callout, flow_get
from devkit.org.credentials import DEFAULT_SOURCE_DIR, CredentialMetadataMissing, load_external_credential
from devkit.org.formula import MAX_RESULT_CHARS, Context, FormulaError, HeaderValue, header_text
from tests.conftest import TEST_API_KEY, TEST_SECRET
from tests.support.receiver import now_iso

SIGNED = DEFAULT_SOURCE_DIR / "externalCredentials" / "Offload.externalCredential-meta.xml"
SHIPPED_FORMULA = ("{!'sha256=' &amp; HEX(HMAC('SHA-256', $Credential.Offload.Body, "
                   "BLOB($Credential.Offload.Secret)))}")


@pytest.fixture
def receiver_url(app) -> Iterator[str]:
    """The real receiver app on a real socket (werkzeug's threaded server)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def payload() -> dict:
    return {"recordId": "0015g00000QwErTAAV", "sentAt": now_iso()}


def credentials_copy(tmp_path: Path, formula: str | None = None) -> Path:
    """A copy of apex/'s credential metadata; ``formula`` replaces the shipped signature formula (XML-escaped)."""
    target = tmp_path / "default"
    for folder in ("externalCredentials", "namedCredentials"):
        shutil.copytree(DEFAULT_SOURCE_DIR / folder, target / folder)
    if formula is not None:
        path = target / "externalCredentials" / SIGNED.name
        text = path.read_text(encoding="utf-8")
        assert SHIPPED_FORMULA in text, "the shipped formula changed: update SHIPPED_FORMULA and the README"
        path.write_text(text.replace(SHIPPED_FORMULA, formula), encoding="utf-8")
    return target


def error_code(result) -> str:
    return json.loads(result.body)["error"]["code"]


def test_the_shipped_formula_is_accepted_by_the_receiver(receiver_url, tmp_path):
    """The unchanged metadata (read from apex/, and from a copy) signs callouts the receiver accepts."""
    url = f"{receiver_url}/callouts/resize-image"
    assert apex_callout(url, payload(), secret=TEST_SECRET).status == 202
    assert apex_callout(url, payload() | {"recordId": "001000000000001AAA"}, secret=TEST_SECRET,
                        source_dir=credentials_copy(tmp_path)).status == 202


@pytest.mark.parametrize("formula", [
    # Base64 instead of hex: same HMAC, other encoding.
    "{!'sha256=' &amp; BASE64ENCODE(HMAC('SHA-256', $Credential.Offload.Body, BLOB($Credential.Offload.Secret)))}",
    # The prefix after the digest instead of before it.
    "{!HEX(HMAC('SHA-256', $Credential.Offload.Body, BLOB($Credential.Offload.Secret))) &amp; 'sha256='}",
    # Message and key swapped.
    "{!'sha256=' &amp; HEX(HMAC('SHA-256', BLOB($Credential.Offload.Secret), $Credential.Offload.Body))}",
    # A hash of the body, not an HMAC: no secret at all.
    "{!'sha256=' &amp; HEX(HASH('SHA-256', $Credential.Offload.Body))}",
], ids=["base64", "order", "swapped", "hash"])
def test_a_changed_formula_is_refused_by_the_receiver(receiver_url, tmp_path, formula):
    """The header comes from the formula, not from services.signing: change the formula and the receiver says 401."""
    source_dir = credentials_copy(tmp_path, formula)
    for send in (apex_callout, flow_callout):
        result = send(f"{receiver_url}/callouts/resize-image", payload(), secret=TEST_SECRET, source_dir=source_dir)
        assert result.status == 401, (send.__name__, result.body)
        assert error_code(result) == "SIGNATURE_MISMATCH"


def test_a_formula_the_org_would_not_save_stops_the_callout(receiver_url, tmp_path):
    """LOWER() is not a named credential formula function: nothing is sent."""
    source_dir = credentials_copy(tmp_path, "{!'sha256=' &amp; LOWER(HEX(HMAC('SHA-256', $Credential.Offload.Body, "
                                            "BLOB($Credential.Offload.Secret))))}")
    with pytest.raises(FormulaError, match="Unknown function LOWER"):
        apex_callout(f"{receiver_url}/callouts/resize-image", payload(), secret=TEST_SECRET, source_dir=source_dir)


def test_missing_metadata_is_a_clear_error(tmp_path):
    with pytest.raises(CredentialMetadataMissing, match="apex_snapshot"):
        load_external_credential("Offload", tmp_path)


def test_get_job_through_the_api_key_credential(receiver_url):
    """getJob's mode: the Offload_ApiKey credential's Bearer header; a wrong key is 401."""
    accepted = apex_callout(f"{receiver_url}/callouts/resize-image", payload(), secret=TEST_SECRET)
    status_url = json.loads(accepted.body)["statusUrl"]
    assert status_url.startswith(receiver_url)
    for get in (apex_get, flow_get):
        answer = get(status_url, api_key=TEST_API_KEY)
        assert (answer.status, answer.fault) == (200, False), answer.body
        assert json.loads(answer.body)["status"] == "queued"
        wrong = get(status_url, api_key="not-the-key")
        assert wrong.status == 401 and error_code(wrong) == "API_KEY_MISMATCH"
    assert flow_get(status_url, api_key="not-the-key").fault


def test_a_get_through_the_signing_credential_is_refused_with_a_pointer_to_the_api_key(receiver_url):
    """The body formula signs an empty Blob for a GET (one value for every request): 401, naming Offload_ApiKey."""
    accepted = apex_callout(f"{receiver_url}/callouts/resize-image", payload(), secret=TEST_SECRET)
    answer = apex_get(json.loads(accepted.body)["statusUrl"], secret=TEST_SECRET)
    assert answer.status == 401 and error_code(answer) == "SIGNATURE_MISMATCH"
    assert "Offload_ApiKey" in json.loads(answer.body)["error"]["message"]


# The evaluator itself: exactly the documented subset, typed.

def evaluate(value: str, body: bytes = b"{}", **parameters: str) -> str:
    return header_text(HeaderValue.parse(value), Context("Offload", body, parameters))


def test_documented_functions_evaluate_as_documented():
    assert evaluate("{!HEX(BLOB('ab'))}") == "6162"  # base-16, lower case
    assert evaluate("{!BASE64ENCODE(BLOB('user' & ':' & 'pass'))}") == "dXNlcjpwYXNz"  # the documented Basic example
    assert evaluate("{!HEX(BASE64DECODE('q80='))}") == "abcd"
    assert evaluate("{!HEX(HASH('SHA-256', $Credential.Offload.Body))}", b"") == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert evaluate("{!'a\\'b' & \"c\"}") == "a'bc"
    assert evaluate("{!hex(blob($Credential.Offload.Secret))}", Secret="k") == "6b"  # function names: any case
    assert evaluate("Bearer static") == "Bearer static"


@pytest.mark.parametrize(("value", "message"), [
    ("{!TEXT(NOW())}", "Unknown function TEXT"),
    ("{!LOWER('A')}", "Unknown function LOWER"),
    ("{!HEX(HMAC('SHA256', $Credential.Offload.Body, BLOB('k')))}", "only supported algorithm is SHA-256"),
    ("{!HEX(HMAC('SHA-256', $Credential.Offload.Body, 'k'))}", "argument 3 of HMAC"),
    ("{!HEX('text')}", "Expected Blob, received String"),
    ("{!'sha256=' & $Credential.Offload.Body}", "operator '&'"),
    ("{!BLOB('x')}", "returns a Blob"),
    ("{!HEX(BLOB('x'), BLOB('y'))}", "Expected 1, received 2"),
    ("{!$User.Email}", "does not exist"),
    ("{!$Credential.Other.Secret}", "External Credential Offload"),
    ("{!$Credential.Offload.Secret}", "add an authentication parameter named Secret"),
    ("{!'a' + 'b'}", "Syntax error"),
    ("{!HEX(BLOB('a')}", "Syntax error"),
    ("{!'a' 'b'}", "unexpected"),
    ("{!'a\\n'}", "escape"),
    ("{!}", "empty"),
    ("Bearer {!$Credential.Offload.ApiKey}", "mixes text and a formula"),
    ("{!'" + "x" * 3_900 + "'}", "at most 3900"),
])
def test_anything_outside_the_subset_is_refused(value, message):
    with pytest.raises(FormulaError, match=message):
        evaluate(value)


def test_the_evaluated_value_is_cut_at_1300_characters():
    """Help: at most 1,300 characters of an evaluated formula are carried."""
    assert len(evaluate("{!'" + "x" * 1_500 + "'}")) == MAX_RESULT_CHARS == 1_300


def test_every_shipped_external_credential_parses_and_evaluates():
    """Each deployed header formula is inside the documented subset (else Setup would refuse it too)."""
    files = sorted((DEFAULT_SOURCE_DIR / "externalCredentials").glob("*.externalCredential-meta.xml"))
    assert [f.name.split(".")[0] for f in files] == ["Offload", "Offload_ApiKey"]
    parameters = {"Offload": {"Secret": "s"}, "Offload_ApiKey": {"ApiKey": "k-1"}}
    evaluated = {name: load_external_credential(name).evaluate(b"{}", parameters[name]) for name in parameters}
    assert evaluated["Offload_ApiKey"] == [("Authorization", "Bearer k-1")]
    [(header, value)] = evaluated["Offload"]
    assert header == "X-Offload-Signature" and value.startswith("sha256=") and len(value) == 71
