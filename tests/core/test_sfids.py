"""services.sfids: normalize() agrees with is_valid_id() and to_18() on every kind of input."""

from __future__ import annotations

import pytest

from services.sfids import checksum, is_valid_id, normalize, to_18

ID15 = "0685g00000XyZaB"
ID18 = ID15 + checksum(ID15)


@pytest.mark.parametrize("value", [
    ID15, ID18, ID18.lower(), ID15 + "AAA", ID15[:-1], ID18 + "A", "0685g00000XyZa!", "", None, 68, ["x"],
    ID15.upper(), ID18[:15] + ID18[15:].lower(),
])
def test_normalize_is_to_18_of_valid_ids_and_none_otherwise(value: object) -> None:
    valid = isinstance(value, str) and is_valid_id(value)
    assert normalize(value) == (to_18(value) if valid else None)  # type: ignore[arg-type]
    assert normalize(value) == normalize(value)  # the cached answer is the same answer


def test_to_18_still_raises_for_invalid_ids() -> None:
    assert to_18(ID15) == ID18 and to_18(ID18) == ID18
    with pytest.raises(ValueError, match="not a valid Salesforce Id"):
        to_18(ID15 + "AAA")
