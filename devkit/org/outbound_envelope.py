"""The Outbound Message wire format: the SOAP envelope Salesforce sends and the reply it accepts.

Kept apart from the sender (``outbound.py``) so the format can be checked byte for byte
against the fixtures in ``tests/fixtures/salesforce`` without any networking. Sources, cited
below by title:

- "Understanding Notifications": the envelope shape and namespaces. The prefixes
  (``soapenv``/``xsd``/``xsi`` on the Envelope, default namespace on ``notifications``,
  ``xmlns:sf`` on each ``sObject``), ``sf:Id`` first then the other fields in ASCII order of
  API name, the value formats and the nil ``SessionId`` follow the public captures:
  https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_notifications.htm
- "Building a Listener" (success is HTTP 200 with ``notificationsResponse/Ack`` true; Ack
  false, a SOAP Fault, a non-XML body or any other status is a failure and is retried by the
  sender):
  https://developer.salesforce.com/docs/platform/api/guide/sforce-api-om-outboundmessaging-listener.html
- "Setting Up Outbound Messaging" (the action's settings and the allowed ports):
  https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_setting_up.htm
- "Considerations for Security" (HTTPS when Send Session ID is checked):
  https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_security.htm

The envelope is built with lxml, not zeep: Salesforce's serializer puts the prefixes where
the captures show them, zeep would choose its own (``ns0``...). The tests check the output
with zeep (https://docs.python-zeep.org/en/master/) against the fixture WSDL instead.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from lxml import etree
from urllib3.util import SKIP_HEADER

from services.sfids import is_valid_id, to_18
from services.soapxml import OUTBOUND_NS, SOAP11_NS, SOBJECT_NS, XSD_NS, XSI_NS, UnsafeXML, parse_untrusted

SOAPENV_NS = SOAP11_NS
OM_NS = OUTBOUND_NS
SF_NS = SOBJECT_NS

_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
# Characters XML 1.0 cannot carry at all; Salesforce text cannot hold them either.
_NOT_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# lxml writes namespace declarations before attributes; the captures have ``xsi:type`` first.
# Attribute order means nothing to XML, but matching it keeps the body byte-equal to the captures.
_SOBJECT_START = re.compile(rb'<sObject xmlns:sf="' + re.escape(SF_NS.encode()) + rb'" xsi:type="(sf:\w+)">')


@dataclass(frozen=True)
class OutboundMessageDefinition:
    """An Outbound Message action as configured in Setup ("Setting Up Outbound Messaging")."""

    name: str
    sobject: str
    fields: tuple[str, ...]
    endpoint_url: str
    org_id: str
    action_id: str
    user_id: str
    include_session_id: bool
    instance_url: str
    api_version: str = "62.0"


def validate_definition(
    d: OutboundMessageDefinition, *, https_for_session_id: bool, check_port: bool
) -> None:
    """Reject what Setup rejects: bad ids, ports outside 80/443/1024-65535 ("Setting Up Outbound
    Messaging"), and a non-HTTPS endpoint with Send Session ID checked ("Considerations for Security")."""
    for label, value, prefix in (
        ("org_id", d.org_id, "00D"),
        ("action_id", d.action_id, "04k"),
        ("user_id", d.user_id, "005"),
    ):
        if not is_valid_id(value) or not value.startswith(prefix):
            raise ValueError(f"{label} must be a valid {prefix}... Salesforce Id, not {value!r}")
    url = urlsplit(d.endpoint_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"endpoint_url must be an http(s) URL, not {d.endpoint_url!r}")
    port = url.port or (443 if url.scheme == "https" else 80)
    if check_port and not (port == (443 if url.scheme == "https" else 80) or 1024 <= port <= 65535):
        raise ValueError(
            f"port {port} not allowed: Salesforce permits 80 (HTTP only), 443 (HTTPS only) "
            "and 1024-65535 (Setting Up Outbound Messaging: "
            "https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_setting_up.htm)"
        )
    if d.include_session_id and url.scheme != "https" and https_for_session_id:
        raise ValueError(
            "with Send Session ID checked only HTTPS endpoint URLs are supported "
            "(Setting Up Outbound Messaging: "
            "https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_setting_up.htm"
            "); use https or OutboundConfig(require_https_for_session_id=False)"
        )


@dataclass(frozen=True)
class EnvelopeOptions:
    """Rendering choices the public captures do not settle (none confirmed by Salesforce's documentation).

    Attributes:
        null_fields: ``"omit"`` (default: no capture shows ``xsi:nil`` on an ``sf:`` field) or
            ``"nil"`` (render ``<sf:X xsi:nil="true"/>``).
        double_format: ``"java"`` (default) renders floats like Java's ``Double.toString``,
            which the SOAP API uses: ``39.0``, ``2500000.0`` but ``1.0E7`` from 10 million up
            (AnnualRevenue ``1.0E7`` seen in a SOAP API capture, funwithsfdc.blogspot.com
            2011 "CastIron and Scientific Notation"). ``"plain"`` never uses an exponent.
        pretty: indent with one space per level like the captures (Axis style); whitespace
            is insignificant to any XML parser, so ``False`` is equally valid on the wire.
    """

    null_fields: Literal["omit", "nil"] = "omit"
    double_format: Literal["java", "plain"] = "java"
    pretty: bool = True


@dataclass(frozen=True)
class NotificationData:
    """One ``Notification``: its ``04l`` id, the object type and the record (None = deleted)."""

    notification_id: str
    sobject: str
    record: Mapping[str, Any] | None
    record_id: str


@dataclass(frozen=True)
class AckOutcome:
    """How Salesforce would judge a listener's reply ("Building a Listener")."""

    delivered: bool
    ack: bool | None
    error: str | None


def soap_urls(instance_url: str, api_version: str, org_id: str) -> tuple[str, str]:
    """``(EnterpriseUrl, PartnerUrl)``: ``<host>/services/Soap/c|u/<version>/<15-char org id>``, as in captures."""
    base = instance_url.rstrip("/")
    org15 = org_id[:15]
    return (f"{base}/services/Soap/c/{api_version}/{org15}", f"{base}/services/Soap/u/{api_version}/{org15}")


def ordered_fields(fields: Sequence[str]) -> list[str]:
    """``Id`` first, then the other fields in ASCII order of API name, once each, as captures show.

    Python's ``sorted`` on ``str`` is code-point order, which for API names is exactly the
    observed order: upper case, then ``_``, then lower case.
    """
    rest = sorted({f for f in fields if f.lower() != "id"})
    return ["Id", *rest]


def java_double(value: float) -> str:
    """Render a double the way Java's ``Double.toString`` does (decimal in [1e-3, 1e7), else ``xE``)."""
    if math.isnan(value) or math.isinf(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        text = repr(float(value))
        return text if ("." in text or "e" in text) else text + ".0"
    d = Decimal(repr(abs(value)))
    digits = "".join(map(str, d.as_tuple().digits)).rstrip("0") or "0"
    mantissa = digits[0] + "." + (digits[1:] or "0")
    return f"{'-' if value < 0 else ''}{mantissa}E{d.adjusted()}"


def format_value(value: Any, options: EnvelopeOptions | None = None) -> str:
    """Render one field value as Salesforce writes it in the captured envelopes.

    dateTime ``2017-09-01T16:27:19.000Z`` (UTC, milliseconds; naive values are taken as UTC),
    date ``1978-01-01``, time ``10:00:00.000Z``, booleans ``true``/``false``, doubles per
    ``options.double_format``, base64 fields as base64. Strings are sent as they are (the org
    may already store dates as Salesforce-formatted strings); lxml entity-escapes them.
    """
    options = options or EnvelopeOptions()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        plain = options.double_format != "java"
        return format(Decimal(str(value)), "f") if plain else java_double(float(value))
    if isinstance(value, dt.datetime):
        utc = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        return utc.strftime("%Y-%m-%dT%H:%M:%S") + f".{utc.microsecond // 1000:03d}Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.strftime("%H:%M:%S") + f".{value.microsecond // 1000:03d}Z"
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, str):
        return _NOT_XML_CHARS.sub("", value)
    raise TypeError(f"cannot send a {type(value).__name__} in an Outbound Message field (value {value!r})")


def build_envelope(
    *,
    org_id: str,
    action_id: str,
    session_id: str | None,
    enterprise_url: str,
    partner_url: str,
    fields: Sequence[str],
    notifications: Sequence[NotificationData],
    options: EnvelopeOptions | None = None,
) -> bytes:
    """The UTF-8 request body of one Outbound Message ("Understanding Notifications"), 1..100 notifications.

    A record that no longer exists (``record=None``) is sent with ``sf:Id`` only: the help
    says "the notification contains no data" but the exact XML is not confirmed by Salesforce's documentation.
    """
    options = options or EnvelopeOptions()
    if not 1 <= len(notifications) <= 100:
        raise ValueError(f"an Outbound Message carries 1 to 100 notifications, not {len(notifications)}")
    envelope = etree.Element(
        f"{{{SOAPENV_NS}}}Envelope", nsmap={"soapenv": SOAPENV_NS, "xsd": XSD_NS, "xsi": XSI_NS}
    )
    body = etree.SubElement(envelope, f"{{{SOAPENV_NS}}}Body")
    root = etree.SubElement(body, f"{{{OM_NS}}}notifications", nsmap={None: OM_NS})
    etree.SubElement(root, f"{{{OM_NS}}}OrganizationId").text = to_18(org_id)
    etree.SubElement(root, f"{{{OM_NS}}}ActionId").text = to_18(action_id)
    session = etree.SubElement(root, f"{{{OM_NS}}}SessionId")
    if session_id is None:
        session.set(f"{{{XSI_NS}}}nil", "true")
    else:
        session.text = session_id
    etree.SubElement(root, f"{{{OM_NS}}}EnterpriseUrl").text = enterprise_url
    etree.SubElement(root, f"{{{OM_NS}}}PartnerUrl").text = partner_url
    order = ordered_fields(fields)
    for note in notifications:
        element = etree.SubElement(root, f"{{{OM_NS}}}Notification")
        etree.SubElement(element, f"{{{OM_NS}}}Id").text = note.notification_id
        sobject = etree.SubElement(element, f"{{{OM_NS}}}sObject", nsmap={"sf": SF_NS})
        sobject.set(f"{{{XSI_NS}}}type", f"sf:{note.sobject}")
        etree.SubElement(sobject, f"{{{SF_NS}}}Id").text = to_18(note.record_id)
        if note.record is None:
            continue
        for name in order[1:]:
            value = _lookup(note.record, name)
            if value is None and options.null_fields == "omit":
                continue
            field = etree.SubElement(sobject, f"{{{SF_NS}}}{name}")
            if value is None:
                field.set(f"{{{XSI_NS}}}nil", "true")
            else:
                field.text = format_value(value, options)
    if options.pretty:
        etree.indent(envelope, space=" ")
    text = _SOBJECT_START.sub(
        rb'<sObject xsi:type="\1" xmlns:sf="' + SF_NS.encode() + b'">',
        etree.tostring(envelope, encoding="UTF-8"),
    )
    return _XML_DECLARATION + text + (b"\n" if options.pretty else b"")


def _lookup(record: Mapping[str, Any], name: str) -> Any:
    """A field by API name; API names are case-insensitive in Salesforce, so fall back to that."""
    if name in record:
        return record[name]
    lowered = name.lower()
    return next((v for k, v in record.items() if k.lower() == lowered), None)


def parse_ack(status: int, body: bytes) -> AckOutcome:
    """Judge a listener reply the way Salesforce does ("Building a Listener"): only 200 + ``Ack`` true delivers.

    Error texts imitate Setup's "Delivery Failure Reason" column. The SAX prolog message was
    seen in https://github.com/matrix-org/matrix-hookshot/issues/837; the other wordings are not confirmed by
    Salesforce's documentation.
    """
    if not body.strip():
        return AckOutcome(False, None, f"({status}) empty response" if status != 200 else "No content")
    try:
        # Listener replies are untrusted too (see services.soapxml); a reply may declare any encoding.
        root = parse_untrusted(body, encoding=None)
    except UnsafeXML:
        # Wording not confirmed by Salesforce's documentation: what a Java parser with secure processing says
        # about a DOCTYPE.
        reason = 'org.xml.sax.SAXParseException; DOCTYPE is disallowed when the feature ' \
                 '"http://apache.org/xml/features/disallow-doctype-decl" set to true.'
        return AckOutcome(False, None, reason if status == 200 else f"({status}) {reason}")
    except etree.XMLSyntaxError as exc:
        if not body.lstrip().startswith(b"<"):
            reason = (
                "org.xml.sax.SAXParseException; lineNumber: 1; columnNumber: 1; "
                "Content is not allowed in prolog."
            )
        else:
            reason = f"org.xml.sax.SAXParseException; {exc}"
        return AckOutcome(False, None, reason if status == 200 else f"({status}) {reason}")
    fault = root.find(f"{{{SOAPENV_NS}}}Body/{{{SOAPENV_NS}}}Fault")
    if fault is not None:
        code = (fault.findtext("faultcode") or "").strip()
        text = (fault.findtext("faultstring") or "").strip()
        return AckOutcome(False, None, f"({status}) SOAP Fault {code}: {text}")
    if root.tag != f"{{{SOAPENV_NS}}}Envelope":
        return AckOutcome(False, None, f"({status}) reply is not a SOAP 1.1 Envelope: {root.tag}")
    ack_text = root.findtext(f"{{{SOAPENV_NS}}}Body/{{{OM_NS}}}notificationsResponse/{{{OM_NS}}}Ack")
    if ack_text is None:
        return AckOutcome(False, None, f"({status}) reply has no notificationsResponse/Ack")
    ack = {"true": True, "1": True, "false": False, "0": False}.get(ack_text.strip())
    if ack is None:
        return AckOutcome(False, None, f"({status}) Ack is not an xsd:boolean: {ack_text!r}")
    if status != 200:
        return AckOutcome(False, ack, f"({status}) HTTP status is not 200")
    return AckOutcome(ack, ack, None if ack else "Ack false")


def post_message(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout_s: float,
    verify: bool | str,
    follow_redirects: bool,
) -> dict[str, Any]:
    """POST one message and judge the reply; never raises for network trouble (it is a failure).

    A fresh ``requests.Session`` with its default headers cleared, so only the headers
    Salesforce sends (as captured in ``tests/fixtures/salesforce/outbound-request-headers.http``) go out
    (requests would add ``Accept: */*`` and its own User-Agent), and ``trust_env`` off so no proxy or netrc
    from the environment interferes.
    """
    started = time.perf_counter()
    status: int | None = None
    ack: bool | None = None
    try:
        with requests.Session() as session:
            session.trust_env = False
            session.headers.clear()
            # Without SKIP_HEADER http.client adds "Accept-Encoding: identity" when ours is off.
            headers = {"Accept-Encoding": SKIP_HEADER, **headers}
            reply = session.post(
                url, body, headers=headers, timeout=timeout_s, verify=verify, allow_redirects=follow_redirects
            )
        status = reply.status_code
        outcome = parse_ack(reply.status_code, reply.content)
        ack, error = outcome.ack, outcome.error
    except requests.Timeout:
        error = "Read timed out"  # Java's SocketTimeoutException text; Salesforce is a Java client
    except requests.RequestException as exc:
        error = f"IO Exception: {'Connection refused' if 'refused' in str(exc).lower() else exc}"
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    return {"http_status": status, "ack": ack, "error": error, "duration_ms": duration_ms}
