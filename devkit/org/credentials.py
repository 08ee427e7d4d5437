"""The org's Named and External Credentials, read from the project's SFDX metadata in ``apex/``.

A callout to ``callout:<NamedCredential>/...`` carries the custom headers of the Named Credential's External
Credential (Metadata API "ExternalCredential": an ``externalCredentialParameters`` entry of
``parameterType`` ``AuthHeader`` is a header, ``parameterName`` its name, ``parameterValue`` a formula
evaluated at callout time). Headers "are sorted by source and sequence number. Headers from named
credentials are placed before headers from external credentials" and "overwrite headers from external
credentials if the names duplicate" (Help, "Create and Edit Custom Headers",
https://help.salesforce.com/apex/HTViewHelpDoc?id=xcloud.nc_create_custom_headers.htm); Offload's Named
Credentials define no headers of their own, so only the External Credential's are read. The formulas are
evaluated by :mod:`devkit.org.formula`; the principal's authentication parameters (``Secret``, ``ApiKey``)
are what an admin adds in Setup, so the caller passes them.

Where the metadata lives: the emulator reads the very files that are deployed, so a change to a formula
changes what the emulator sends: the checkout's ``apex/force-app/main/default``, or in an install without
``apex/`` the packaged copy of them (:mod:`devkit.org.apexsource`). Tests may pass ``source_dir``; a
missing file is a :class:`CredentialMetadataMissing` naming the path it looked at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from devkit.org.apexsource import source_dir as deployed_source_dir
from devkit.org.formula import Context, FormulaError, HeaderValue, header_text

METADATA_NS = "http://soap.sforce.com/2006/04/metadata"
DEFAULT_SOURCE_DIR = deployed_source_dir()
"""``apex/force-app/main/default`` of the checkout, or its packaged copy."""


class CredentialMetadataMissing(FileNotFoundError):
    """The credential metadata file is not where the emulator looked (not a source checkout?)."""


@dataclass(frozen=True)
class CustomHeader:
    name: str
    value: HeaderValue
    sequence: int


@dataclass(frozen=True)
class ExternalCredential:
    """One ``*.externalCredential-meta.xml``: its developer name and its custom headers, formulas parsed."""

    name: str
    headers: tuple[CustomHeader, ...]

    def evaluate(self, body: bytes, parameters: Mapping[str, str]) -> list[tuple[str, str]]:
        """The headers a callout through this credential carries, in sequence order.

        Raises:
            FormulaError: a formula fails (message prefixed with the header's name).
        """
        context = Context(credential=self.name, body=body, parameters=parameters)
        out = []
        for header in sorted(self.headers, key=lambda h: h.sequence):
            try:
                out.append((header.name, header_text(header.value, context)))
            except FormulaError as exc:
                raise FormulaError(f"External Credential {self.name}, header {header.name}: {exc}") from None
        return out


def _read(path: Path) -> etree._Element:
    if not path.is_file():
        raise CredentialMetadataMissing(
            f"No credential metadata at {path}. The emulator reads apex/force-app/main/default of the checkout, "
            "or its copy in devkit/org/apex_snapshot (python -m devkit.org.apexsource --write).")
    root = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
    return root


def _text(element: etree._Element, tag: str) -> str | None:
    child = element.find(f"{{{METADATA_NS}}}{tag}")
    return child.text if child is not None else None


def load_external_credential(name: str, source_dir: Path | None = None) -> ExternalCredential:
    """Parse ``externalCredentials/<name>.externalCredential-meta.xml`` (every header formula is parsed now,
    as Setup compiles it on save).

    Raises:
        CredentialMetadataMissing: no such file.
        FormulaError: a header formula is outside the supported subset.
    """
    path = (source_dir or DEFAULT_SOURCE_DIR) / "externalCredentials" / f"{name}.externalCredential-meta.xml"
    root = _read(path)
    headers = []
    for parameter in root.iter(f"{{{METADATA_NS}}}externalCredentialParameters"):
        if _text(parameter, "parameterType") != "AuthHeader":
            continue
        header = _text(parameter, "parameterName") or ""
        try:
            value = HeaderValue.parse(_text(parameter, "parameterValue") or "")
        except FormulaError as exc:
            raise FormulaError(f"External Credential {name} ({path}), header {header}: {exc}") from None
        headers.append(CustomHeader(header, value, int(_text(parameter, "sequenceNumber") or "1")))
    return ExternalCredential(name, tuple(headers))


def external_credential_of(named_credential: str, source_dir: Path | None = None) -> str:
    """The External Credential a Named Credential authenticates with (its ``Authentication`` parameter)."""
    path = (source_dir or DEFAULT_SOURCE_DIR) / "namedCredentials" / f"{named_credential}.namedCredential-meta.xml"
    root = _read(path)
    for parameter in root.iter(f"{{{METADATA_NS}}}namedCredentialParameters"):
        if _text(parameter, "parameterType") == "Authentication":
            external = _text(parameter, "externalCredential")
            if external:
                return external
    raise FormulaError(f"Named Credential {named_credential} ({path}) names no External Credential.")


def callout_headers(named_credential: str, body: bytes, parameters: Mapping[str, str],
                    source_dir: Path | None = None) -> list[tuple[str, str]]:
    """The credential headers of a callout to ``callout:<named_credential>/...`` with this body."""
    external = load_external_credential(external_credential_of(named_credential, source_dir), source_dir)
    return external.evaluate(body, parameters)
