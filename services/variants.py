"""Renditions as the operator declares them: ``name:long-edge-px:format,...`` (``OFFLOAD_IMAGE_VARIANTS``).

Parsed by :mod:`services.settings` when a process starts, so a wrong value stops the web and worker
processes with a message naming the variable, instead of failing (and retrying) every job.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.errors import ConfigError

DEFAULT_VARIANTS_SPEC = "large:1600:jpeg,medium:800:webp,thumb:200:jpeg"
RENDITION_FORMATS = ("jpeg", "webp", "png")
"""What a rendition can be encoded as (the workers' encoders: ``workers/imaging/ops.py``)."""
NAME_MAX = 40
"""Length of ``ContentVersion.Offload_Variant__c`` (``apex/.../Offload_Variant__c.field-meta.xml``), which holds
the name: a longer one would fail every write-back with STRING_TOO_LONG, so it is refused at start-up."""


@dataclass(frozen=True)
class Variant:
    """One rendition to produce: ``long_edge`` is the longest side in pixels after orientation."""

    name: str
    long_edge: int
    format: str  # "jpeg", "webp" or "png"


def parse_variants(spec: str, variable: str = "OFFLOAD_IMAGE_VARIANTS", *, example: str = DEFAULT_VARIANTS_SPEC,
                   max_variants: int | None = None) -> tuple[Variant, ...]:
    """Parse a variants variable ("name:px:format,..."); :class:`ConfigError` naming ``variable`` if it is wrong.

    ``example`` is the value the message suggests (the variable's default); ``max_variants`` caps the count.
    """

    def bad(why: str) -> ConfigError:
        return ConfigError(
            f"{variable} is invalid: {why}. Expected a comma-separated list of "
            f"name:long_edge_px:format with format one of jpeg, webp, png, e.g. {example!r}."
        )

    variants: list[Variant] = []
    seen: set[str] = set()
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            raise bad(f"empty entry in {spec!r}")
        parts = [p.strip() for p in item.split(":")]
        if len(parts) != 3:
            raise bad(f"{item!r} does not have 3 parts")
        name, px, fmt = parts
        fmt = fmt.lower()
        if fmt == "jpg":
            fmt = "jpeg"
        if not name or not name.replace("_", "").replace("-", "").isalnum():
            raise bad(f"{item!r} needs a name made of letters, digits, '-' or '_'")
        if len(name) > NAME_MAX:
            raise bad(f"the name {name!r} is longer than {NAME_MAX} characters (Offload_Variant__c holds {NAME_MAX})")
        if name in seen:
            raise bad(f"the name {name!r} is used twice")
        if not px.isdigit() or int(px) <= 0:
            raise bad(f"{item!r} needs a long edge that is a whole number of pixels above 0")
        if int(px) > 16384:
            raise bad(f"{item!r} asks for a long edge above 16384 px")
        if fmt not in RENDITION_FORMATS:
            raise bad(f"{item!r} has the unknown format {parts[2]!r}")
        seen.add(name)
        variants.append(Variant(name, int(px), fmt))
    if max_variants is not None and len(variants) > max_variants:
        raise bad(f"it lists {len(variants)} variants; at most {max_variants} are allowed")
    return tuple(variants)
