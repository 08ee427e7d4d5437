"""The registry refuses what would make an upload's route or a variants variable ambiguous."""

from __future__ import annotations

import pytest

from services.errors import ConfigError
from services.processes.base import Process, registry_of, routes
from services.processes.schemas import PayloadSchema
from services.variants import parse_variants


def _process(name: str, *file_types: str) -> Process:
    return Process(name=name, summary="s", schema=PayloadSchema, handler="x.y",
                   from_notification=lambda sobject, fields: {}, file_types=file_types)


def test_an_upload_type_routes_to_the_one_process_that_takes_it() -> None:
    registry = registry_of(_process("a-one", "jpg", "png"), _process("b-two", "pdf"), _process("c-three"))
    assert routes(registry) == {"jpg": "a-one", "png": "a-one", "pdf": "b-two"}


def test_two_processes_claiming_one_file_type_is_refused() -> None:
    with pytest.raises(ValueError, match="both take .pdf uploads"):
        registry_of(_process("a-one", "pdf"), _process("b-two", "pdf"))


@pytest.mark.parametrize("bad", [".pdf", "PDF", "p df"])
def test_a_file_type_is_a_lower_case_extension_without_a_dot(bad: str) -> None:
    with pytest.raises(ValueError, match="lower-case extensions"):
        _process("a-one", bad)


def test_a_variants_variable_names_itself_its_example_and_its_cap() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_variants("a:10:jpeg,b:20:png", "OFFLOAD_X_VARIANTS", example="page:1600:jpeg", max_variants=1)
    assert "OFFLOAD_X_VARIANTS" in refused.value.message and "'page:1600:jpeg'" in refused.value.message
    assert "at most 1" in refused.value.message
