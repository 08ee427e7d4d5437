"""GET /openapi.json: a valid OpenAPI 3.0.3 document that Salesforce External Services can import.

The rules come from the reference notes, section C (External Services schema support and the Flow HTTP
Callout considerations): OpenAPI 3.0.x (3.1 is not accepted), JSON bodies only, a short unique camelCase
``operationId`` per operation, no ``float``/``long`` (``int64``) formats, no ``oneOf``/``anyOf``/
``nullable`` tricks, and flat request schemas. Every registered process must appear, with a request
schema whose properties are exactly its marshmallow schema's fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.versions.shortcuts import get_spec_version

from services.processes import PROCESSES
from tests.support.receiver import now_iso

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
CAMEL_CASE = re.compile(r"[a-z][a-zA-Z0-9]*")
FORBIDDEN_KEYS = {"oneOf", "anyOf", "nullable", "not"}
FORBIDDEN_FORMATS = {"float", "int64"}


@pytest.fixture
def spec(client) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def _walk(node: Any, path: str = "#") -> Iterator[tuple[str, Any]]:
    """Every (json-pointer-ish path, node) in the document."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}/{i}")


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    assert ref.startswith("#/components/schemas/"), ref
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_the_document_is_valid_openapi_3_0_3(spec: dict[str, Any]) -> None:
    assert spec["openapi"] == "3.0.3"  # External Services takes 2.0 and 3.0; 3.1 is not accepted
    assert get_spec_version(spec).major == "3" and get_spec_version(spec).minor == "0"
    validate(spec)  # raises OpenAPIValidationError with the offending path


def test_servers_point_back_at_this_receiver(client) -> None:
    spec = client.get("/openapi.json", base_url="https://offload.example.com").get_json()
    assert spec["servers"] == [{"url": "https://offload.example.com"}]


def test_every_operation_has_a_unique_camel_case_operation_id(spec: dict[str, Any]) -> None:
    ids = [operation.get("operationId") for _, _, operation in _operations(spec)]
    assert ids and all(isinstance(i, str) and CAMEL_CASE.fullmatch(i) for i in ids), ids
    assert len(ids) == len(set(ids)), ids


def test_bodies_are_json_only(spec: dict[str, Any]) -> None:
    for path, method, operation in _operations(spec):
        if "requestBody" in operation:
            assert set(operation["requestBody"]["content"]) == {"application/json"}, (path, method)
        for status, response in operation["responses"].items():
            assert set(response.get("content", {"application/json": {}})) == {"application/json"}, (
                path, method, status)


def test_no_types_or_constructs_external_services_cannot_import(spec: dict[str, Any]) -> None:
    for where, node in _walk(spec):
        if isinstance(node, dict):
            assert not FORBIDDEN_KEYS & set(node), f"{where} uses {FORBIDDEN_KEYS & set(node)}"
            # A str: under "properties", "format" is a property's name (RenditionResult.format), not a format.
            fmt = node.get("format") if isinstance(node.get("format"), str) else None
            assert fmt not in FORBIDDEN_FORMATS, f"{where} has format {fmt}"
            if node.get("type") == "number":
                pytest.fail(f"{where} is a number (float/double); Flow HTTP Callouts take integers only")


def test_request_schemas_are_flat(spec: dict[str, Any]) -> None:
    for path, method, operation in _operations(spec):
        if "requestBody" not in operation:
            continue
        schema = _resolve(spec, operation["requestBody"]["content"]["application/json"]["schema"])
        assert schema["type"] == "object", (path, method)
        for name, prop in schema["properties"].items():
            assert "$ref" not in prop and prop.get("type") in {"string", "integer", "boolean"}, (path, name, prop)


def test_every_process_is_an_operation_with_its_marshmallow_fields(spec: dict[str, Any]) -> None:
    assert PROCESSES
    for name, process in PROCESSES.items():
        operation = spec["paths"][f"/callouts/{name}"]["post"]
        assert operation["operationId"] == process.operation_id
        assert operation["requestBody"]["required"] is True
        schema = _resolve(spec, operation["requestBody"]["content"]["application/json"]["schema"])
        declared = process.schema().fields
        assert set(schema["properties"]) == {f.data_key or key for key, f in declared.items()}, name
        for key, field in declared.items():
            expected = "integer" if field.__class__.__name__ == "Integer" else (
                "boolean" if field.__class__.__name__ == "Boolean" else "string")
            assert schema["properties"][field.data_key or key]["type"] == expected, (name, key)
        assert {"202", "200"} <= set(operation["responses"]), name  # success is 2xx: >= 300 is a Flow fault


def test_only_registered_processes_are_documented(spec: dict[str, Any]) -> None:
    documented = {path.removeprefix("/callouts/") for path in spec["paths"] if path.startswith("/callouts/")}
    assert documented == set(PROCESSES)


def test_real_answers_match_the_documented_schemas(client, redis_conn) -> None:
    """What the receiver really sends (202, 200 duplicate, 200 skipped, 400, job status) fits the spec."""
    import json as json_

    import jsonschema
    from referencing import Registry, Resource

    from services.queue.loopguard import mark_own_output
    from services.signing import sign

    document = client.get("/openapi.json").get_json()
    registry = Registry().with_resource("urn:offload", Resource.opaque(document))

    def check(body: dict, schema_name: str) -> None:
        schema = {"$ref": f"urn:offload#/components/schemas/{schema_name}"}
        jsonschema.Draft4Validator(schema, registry=registry).validate(body)

    def post(payload: dict) -> object:
        body = json_.dumps({**payload, "sentAt": now_iso()}).encode()
        return client.post("/callouts/resize-image", data=body, content_type="application/json",
                           headers={"X-Offload-Signature": sign(body, "test-secret-0123456789abcdef")})

    accepted = post({"recordId": "0015g00000QwErTAAV"})
    check(accepted.get_json(), "JobAccepted")
    check(post({"recordId": "0015g00000QwErTAAV"}).get_json(), "JobAccepted")
    mark_own_output(redis_conn, ["0685g00000XyZaBAAV"])
    check(post({"contentVersionId": "0685g00000XyZaBAAV"}).get_json(), "JobAccepted")
    invalid = post({"recordId": "nope"})
    assert invalid.status_code == 400
    check(invalid.get_json(), "ErrorBody")
    path = f"/jobs/{accepted.get_json()['jobId']}"
    status = client.get(path, headers={"X-Offload-Signature": sign(path.encode(), "test-secret-0123456789abcdef")})
    check(status.get_json(), "JobStatus")


# What Flow reads must be typed (External Services "Schema Definitions": an untyped schema becomes Apex
# Object; Flow's Apex-defined types hold primitives, lists and other such types), and a GET has no body.

def _schemas_under(spec: dict[str, Any], node: Any, where: str, seen: set[str]) -> Iterator[tuple[str, dict]]:
    """Every schema object reachable from ``node`` (a schema), following $ref once per component."""
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if ref is not None:
        name = ref.rsplit("/", 1)[1]
        if name not in seen:
            seen.add(name)
            yield from _schemas_under(spec, spec["components"]["schemas"][name], f"#/components/schemas/{name}", seen)
        return
    yield where, node
    for key, prop in node.get("properties", {}).items():
        yield from _schemas_under(spec, prop, f"{where}/properties/{key}", seen)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _schemas_under(spec, node[key], f"{where}/{key}", seen)
    for key in ("allOf", "anyOf", "oneOf"):
        for i, part in enumerate(node.get(key, [])):
            yield from _schemas_under(spec, part, f"{where}/{key}/{i}", seen)


def _response_schemas(spec: dict[str, Any]) -> Iterator[tuple[str, dict]]:
    seen: set[str] = set()
    for path, method, operation in _operations(spec):
        for status, response in operation["responses"].items():
            for media, content in response.get("content", {}).items():
                yield from _schemas_under(spec, content["schema"], f"{method.upper()} {path} {status} {media}", seen)


def test_no_get_operation_declares_a_request_body(spec: dict[str, Any]) -> None:
    """"A GET method with an empty request body results in a validation error" (External Services)."""
    gets = [(path, operation) for path, method, operation in _operations(spec) if method == "get"]
    assert gets, "getJob is documented"
    for path, operation in gets:
        assert "requestBody" not in operation, path


def test_every_schema_a_response_reaches_is_typed(spec: dict[str, Any]) -> None:
    """No untyped schema (Apex Object) and no object without properties in anything a flow reads; the one
    map allowed is a typed one (``additionalProperties`` with a type: ErrorDetail.fields, which has the list
    ErrorDetail.fieldErrors beside it for Flow)."""
    checked = 0
    for where, schema in _response_schemas(spec):
        checked += 1
        assert schema.get("type") in {"object", "array", "string", "integer", "boolean"}, f"{where} is untyped"
        if schema["type"] == "object":
            typed_map = isinstance(schema.get("additionalProperties"), dict) and (
                "type" in schema["additionalProperties"] or "$ref" in schema["additionalProperties"])
            assert schema.get("properties") or typed_map, f"{where} is an object without properties"
        if schema["type"] == "array":
            assert isinstance(schema.get("items"), dict) and schema["items"], f"{where} has untyped items"
    assert checked > 20


def test_field_errors_are_a_list_of_a_typed_object(spec: dict[str, Any]) -> None:
    """External Services makes a map (``additionalProperties``) an untyped Object Flow cannot read: the error's
    messages per field are also published as ``fieldErrors``, an array of FieldError {field, message}."""
    detail = spec["components"]["schemas"]["ErrorDetail"]["properties"]
    assert detail["fieldErrors"]["type"] == "array"
    item = _resolve(spec, detail["fieldErrors"]["items"])
    assert item["type"] == "object"
    assert {name: prop["type"] for name, prop in item["properties"].items()} == {"field": "string",
                                                                                 "message": "string"}
    assert "fields" in detail, "the map stays: it is the published name API clients parse"


def test_the_only_map_a_response_carries_has_a_list_twin(spec: dict[str, Any]) -> None:
    """Any ``additionalProperties`` map a response reaches is one Flow cannot read; the only one allowed is
    ErrorDetail.fields, which has ``fieldErrors`` beside it."""
    maps = [where for where, schema in _response_schemas(spec)
            if isinstance(schema, dict) and isinstance(schema.get("additionalProperties"), dict)]
    assert maps == ["#/components/schemas/ErrorDetail/properties/fields"], maps
    assert "fieldErrors" in spec["components"]["schemas"]["ErrorDetail"]["properties"]


def test_a_jobs_result_carries_every_process_result_property(spec: dict[str, Any]) -> None:
    """getJob's result is typed from the processes' result schemas (ResizeImageResult for resize-image)."""
    operation = spec["paths"]["/jobs/{jobId}"]["get"]
    job = _resolve(spec, operation["responses"]["200"]["content"]["application/json"]["schema"])
    result = _resolve(spec, job["properties"]["result"])
    assert result["type"] == "object"
    for name, process in PROCESSES.items():
        assert process.result_schema is not None, f"{name} declares no result_schema: its result would be untyped"
        declared = process.result_schema().fields
        assert {f.data_key or key for key, f in declared.items()} <= set(result["properties"]), name


def test_two_processes_may_not_type_one_result_property_differently() -> None:
    from services.receiver.openapi import _union

    schemas = {"A": {"properties": {"n": {"type": "integer"}}}, "B": {"properties": {"n": {"type": "string"}}}}
    with pytest.raises(ValueError, match="result property 'n'"):
        _union(schemas, ["A", "B"])
    same = {"A": {"properties": {"n": {"type": "integer"}}}, "B": {"properties": {"n": {"type": "integer"}, "m": {
        "type": "string"}}}}
    assert set(_union(same, ["A", "B"])["properties"]) == {"n", "m"}
