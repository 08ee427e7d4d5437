"""Outbound Message XML shared by both ends: the namespaces, and parsing XML we did not write.

The receiver parses envelopes Salesforce (or anyone on the internet) sends; the org
emulator parses the replies a listener sends back. Both go through
:func:`parse_untrusted`, which layers three defences (measured with lxml 6.1.3 /
libxml2 2.14):

1. Any ``<!DOCTYPE``/``<!ENTITY`` in the raw bytes is refused *before* libxml2
   runs, so no DTD, internal subset or parameter entity is ever processed.
   External parameter entities were still fetched with lxml's
   ``resolve_entities="internal"`` up to lxml 6.1.2 (fonttools/fonttools#4195).
2. A parser with ``resolve_entities=False, no_network=True, load_dtd=False,
   huge_tree=False`` (lxml API docs; OWASP XXE Prevention Cheat Sheet) plus a
   resolver that answers every external load with nothing: with layer 1 off,
   those options alone still *opened* a ``file://`` external DTD subset.
3. A post-parse check that the document has no DTD at all.

``huge_tree=False`` keeps libxml2's depth (256) and size limits. By default the
parser is forced to UTF-8 (Salesforce sends UTF-8: the envelope in
https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_notifications.htm
declares it, and captured requests carry ``Content-Type: text/xml; charset=utf-8``), so a
declared UTF-7/UTF-16 encoding cannot hide markup from the byte scan.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from lxml import etree

if TYPE_CHECKING:
    from lxml.etree._docloader import _InputDocument  # the stubs' name for resolve()'s answer; lxml exports none

SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
SOBJECT_NS = "urn:sobject.enterprise.soap.sforce.com"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

_DTD_MARKERS = (b"<!DOCTYPE", b"<!ENTITY")
_local = threading.local()


class UnsafeXML(ValueError):
    """The document declares a DOCTYPE or entities; it is refused unread."""


class _RefuseExternal(etree.Resolver):
    """Answer every external DTD/entity load with an empty document: no file is opened, no URL fetched."""

    def resolve(self, system_url: str | None, public_id: str | None, context: object) -> _InputDocument:
        return self.resolve_string("", context)


def _parser(encoding: str | None) -> etree.XMLParser:
    """One hardened parser per thread and encoding: lxml serialises concurrent use of a shared parser."""
    key = f"parser_{encoding}"
    parser = getattr(_local, key, None)
    if parser is None:
        parser = etree.XMLParser(
            encoding=encoding,
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            attribute_defaults=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            collect_ids=False,
        )
        parser.resolvers.add(_RefuseExternal())
        setattr(_local, key, parser)
    return parser


def parse_untrusted(body: bytes, *, encoding: str | None = "utf-8") -> etree._Element:
    """Parse XML from outside with every defence above.

    Raises:
        UnsafeXML: a DOCTYPE or entity declaration.
        lxml.etree.XMLSyntaxError: not well-formed (in ``encoding``).
    """
    if any(marker in body for marker in _DTD_MARKERS):
        raise UnsafeXML("DOCTYPE and ENTITY declarations are not allowed")
    root = etree.fromstring(body, _parser(encoding))
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UnsafeXML("DOCTYPE and ENTITY declarations are not allowed")
    return root
