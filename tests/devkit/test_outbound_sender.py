"""The org emulator's Outbound Message sender, against a real HTTP listener on 127.0.0.1.

Fixtures are public samples copied to ``tests/fixtures/salesforce``. Salesforce's pages, cited below by title:

- "Understanding Notifications":
  https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_notifications.htm
- "Building a Listener":
  https://developer.salesforce.com/docs/platform/api/guide/sforce-api-om-outboundmessaging-listener.html
- "Setting Up Outbound Messaging":
  https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_setting_up.htm
- "Considerations for Security":
  https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_security.htm
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
import trustme
from werkzeug.datastructures import Headers
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response
from zeep import Client, Settings

from devkit.org.outbound import OutboundConfig, OutboundMessageDefinition, OutboundSender
from devkit.org.outbound_envelope import (
    EnvelopeOptions,
    NotificationData,
    build_envelope,
    format_value,
    java_double,
    parse_ack,
    soap_urls,
)
from services.sfids import is_valid_id

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "salesforce"
ORG, ACTION, USER = "00D5g000000Xk2PEAS", "04k5g000000CaBcAAK", "0055g00000AbCdEAAV"
INSTANCE = "https://acme-dev.my.salesforce.com"
SESSION = "00D5g000000Xk2P!AR8AQFakeSessionTokenForTestsOnly.h3Kx9_QvTq2mZpL7nA0bWcYdEeFfGgHhIiJjKkLlMm"
FIELDS = (
    "Name",
    "OwnerId",
    "AnnualRevenue",
    "NumberOfEmployees",
    "IsDeleted",
    "CreatedDate",
    "LastModifiedDate",
    "SystemModstamp",
    "Document_Request__c",
    "AccountNumber",
    "BillingCity",
    "BillingCountry",
    "Industry",
)
UTC = dt.UTC
# The three Accounts of outbound-account-batch.xml, as the org would hand them over.
ACCOUNTS = [
    {
        "Id": "0015g00000QwErTAAV",
        "AnnualRevenue": 2500000.0,
        "BillingCity": "Springfield",
        "BillingCountry": "USA",
        "CreatedDate": dt.datetime(2025, 11, 3, 9, 15, 42, tzinfo=UTC),
        "Document_Request__c": "INVOICE_PDF",
        "Industry": "Manufacturing",
        "IsDeleted": False,
        "LastModifiedDate": "2025-11-20T14:02:11.000Z",
        "Name": "Acme Widgets & Sons",
        "NumberOfEmployees": 120,
        "OwnerId": "0055g00000AbCdEAAV",
        "SystemModstamp": dt.datetime(2025, 11, 20, 14, 2, 11),
        "AccountNumber": None,
    },
    {
        "Id": "0015g00000QwErUAAV",
        "CreatedDate": "2025-11-19T08:00:00.000Z",
        "Document_Request__c": "STATEMENT_PDF",
        "IsDeleted": False,
        "LastModifiedDate": "2025-11-20T14:02:12.000Z",
        "Name": "Globex Corporation",
        "OwnerId": "0055g00000AbCdEAAV",
        "SystemModstamp": "2025-11-20T14:02:12.000Z",
    },
    {
        "Id": "0015g00000QwErVAAV",
        "AccountNumber": "CD-0042",
        "BillingCountry": "Deutschland",
        "CreatedDate": "2025-10-01T00:00:00.000Z",
        "Document_Request__c": "INVOICE_PDF",
        "IsDeleted": False,
        "LastModifiedDate": "2025-11-20T14:02:13.000Z",
        "Name": "Müller GmbH – Köln",
        "NumberOfEmployees": 8,
        "OwnerId": "0055g00000AbCdFAAV",
        "SystemModstamp": "2025-11-20T14:02:13.000Z",
    },
]
FIXTURE_NOTE_IDS = ["04l5g00000Ab1CdAAJ", "04l5g00000Ab1CeAAJ", "04l5g00000Ab1CfAAJ"]
NOTE_ID = re.compile(rb"<Id>(04l\w{15})</Id>")


class Receiver:
    """A tiny listener: records every request and answers what the test scripted."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.requests: list[dict] = []
        self.script: list[str] = []
        self.default = "ack"
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True, ssl_context=ssl_context)
        self.url = (
            f"{'https' if ssl_context else 'http'}://127.0.0.1:{self._server.server_port}/outbound/resize"
        )
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def _app(self, environ, start_response):
        request = Request(environ)
        with self._lock:
            self.requests.append({"headers": Headers(request.headers), "body": request.get_data()})
            behaviour = self.script.pop(0) if self.script else self.default
        return self._answer(behaviour)(environ, start_response)

    @staticmethod
    def _answer(behaviour: str) -> Response:
        xml = "text/xml; charset=utf-8"
        if behaviour == "slow":
            time.sleep(1.0)
            behaviour = "ack"
        answers = {
            "ack": (200, "ack.xml"),
            "nack": (200, "nack.xml"),
            "fault": (500, "soap-fault.xml"),
            "fault200": (200, "soap-fault.xml"),
            "ack404": (404, "ack.xml"),
        }
        if behaviour in answers:
            status, name = answers[behaviour]
            return Response((FIXTURES / name).read_bytes(), status=status, content_type=xml)
        if behaviour == "redirect":
            return Response(b"", status=302, headers={"Location": "/elsewhere"})
        if behaviour == "garbage":
            return Response(b"OK", status=200, content_type="text/plain")
        return Response(b"Internal Server Error", status=500, content_type="text/plain")

    def bodies(self) -> list[bytes]:
        return [r["body"] for r in self.requests]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class FakeClock:
    """A monotonic clock the test moves by hand, so a 24-hour schedule is checked exactly."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def senders():
    made: list[OutboundSender] = []

    def make(**kwargs) -> OutboundSender:
        made.append(OutboundSender(**kwargs))
        return made[-1]

    yield make
    for s in made:
        s.stop()


def account_om(
    url: str, *, name: str = "Offload_Account", session: bool = False
) -> OutboundMessageDefinition:
    return OutboundMessageDefinition(
        name=name,
        sobject="Account",
        fields=FIELDS,
        endpoint_url=url,
        org_id=ORG,
        action_id=ACTION,
        user_id=USER,
        include_session_id=session,
        instance_url=INSTANCE,
    )


def notification_ids(body: bytes) -> list[str]:
    return [m.decode() for m in NOTE_ID.findall(body)]


def zeep_notifications(body: bytes, wsdl: str = "outbound-message.wsdl"):
    """Deserialize a request the way a strict zeep listener would.

    ``strict``: https://docs.python-zeep.org/en/master/settings.html
    """
    settings = Settings(strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    client = Client(str(FIXTURES / wsdl), settings=settings)
    op = client.wsdl.bindings["{http://soap.sforce.com/2005/09/outbound}NotificationBinding"].get(
        "notifications"
    )
    from zeep.loader import parse_xml

    return op.input.deserialize(parse_xml(body, client.transport, settings=settings))


# -- the envelope ---------------------------------------------------------------------------------
def test_envelope_is_byte_equal_to_the_account_batch_fixture():
    """Three Accounts render exactly as outbound-account-batch.xml: order, escaping, formats, UTF-8."""
    enterprise, partner = soap_urls(INSTANCE, "62.0", ORG)
    body = build_envelope(
        org_id=ORG,
        action_id=ACTION,
        session_id=SESSION,
        enterprise_url=enterprise,
        partner_url=partner,
        fields=FIELDS,
        notifications=[
            NotificationData(n, "Account", r, r["Id"])
            for n, r in zip(FIXTURE_NOTE_IDS, ACCOUNTS, strict=True)
        ],
    )
    assert body == (FIXTURES / "outbound-account-batch.xml").read_bytes()


def test_envelope_is_byte_equal_to_the_contentversion_fixture():
    """Send Session ID off gives ``<SessionId xsi:nil="true"/>``; ints, booleans and lookups as captured."""
    record = {
        "Id": "0685g00000XyZaBAAV",
        "Checksum": "5d41402abc4b2a76b9719d911017c592",
        "ContentDocumentId": "0695g00000XyZaBAAV",
        "ContentSize": 48213,
        "CreatedById": USER,
        "CreatedDate": "2025-11-20T14:05:00.000Z",
        "Description": "Signed contract scan",
        "FileExtension": "pdf",
        "FileType": "PDF",
        "FirstPublishLocationId": "0015g00000QwErTAAV",
        "IsLatest": True,
        "LastModifiedDate": dt.datetime(2025, 11, 20, 14, 5, tzinfo=UTC),
        "PathOnClient": "contract-2025-11.pdf",
        "ReasonForChange": None,
        "Title": "contract-2025-11",
        "VersionNumber": "1",
    }
    enterprise, partner = soap_urls(INSTANCE + "/", "62.0", ORG)
    body = build_envelope(
        org_id=ORG,
        action_id="04k5g000000CaBdAAK",
        session_id=None,
        enterprise_url=enterprise,
        partner_url=partner,
        fields=[k for k in record if k != "Id"],
        notifications=[NotificationData("04l5g00000Ab1CgAAJ", "ContentVersion", record, record["Id"])],
    )
    assert body == (FIXTURES / "outbound-contentversion.xml").read_bytes()
    assert zeep_notifications(body, "outbound-contentversion.wsdl").SessionId is None


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (39.0, "39.0"),
        (0.0, "0.0"),
        (2500000.0, "2500000.0"),
        (1e7, "1.0E7"),
        (123456789.0, "1.23456789E8"),
        (0.0001, "1.0E-4"),
        (-2.5e7, "-2.5E7"),
        (0.25, "0.25"),
    ],
)
def test_doubles_render_like_java(value, text):
    """Doubles follow Java's Double.toString, as the SOAP API renders AnnualRevenue (``1.0E7``)."""
    assert java_double(value) == text


def test_value_formats():
    """dateTime in UTC with milliseconds and Z, date, time, booleans, ints, as in the captured envelopes."""
    berlin = dt.timezone(dt.timedelta(hours=1))
    assert (
        format_value(dt.datetime(2017, 9, 1, 17, 27, 19, 123456, tzinfo=berlin)) == "2017-09-01T16:27:19.123Z"
    )
    assert format_value(dt.date(1978, 1, 1)) == "1978-01-01"
    assert format_value(dt.time(10, 0)) == "10:00:00.000Z"
    assert (format_value(True), format_value(False), format_value(120)) == ("true", "false", "120")
    assert format_value(1e7, EnvelopeOptions(double_format="plain")) == "10000000.0"
    assert format_value("a\x00b") == "ab"
    with pytest.raises(TypeError):
        format_value({"street": "x"})


@pytest.mark.parametrize(
    ("mode", "expected"), [("omit", b""), ("nil", b'<sf:AccountNumber xsi:nil="true"/>')]
)
def test_null_fields(mode, expected):
    """Nulls are omitted by default (not confirmed by Salesforce's documentation; configurable to ``xsi:nil``)."""
    body = build_envelope(
        org_id=ORG,
        action_id=ACTION,
        session_id=None,
        enterprise_url="e",
        partner_url="p",
        fields=["AccountNumber"],
        options=EnvelopeOptions(null_fields=mode, pretty=False),
        notifications=[
            NotificationData(FIXTURE_NOTE_IDS[0], "Account", {"AccountNumber": None}, ACCOUNTS[0]["Id"])
        ],
    )
    assert (b"AccountNumber" in body) == bool(expected)
    assert expected in body


@pytest.mark.parametrize(
    ("status", "body", "delivered", "error_part"),
    [
        (200, "ack.xml", True, None),
        (200, "nack.xml", False, "Ack false"),
        (500, "ack.xml", False, "(500)"),
        (200, "soap-fault.xml", False, "Temporary failure: job queue unavailable"),
        (500, "soap-fault.xml", False, "soapenv:Server"),
        (200, b"OK", False, "Content is not allowed in prolog"),
        (200, b"", False, "No content"),
        (200, b"<a><b></a>", False, "SAXParseException"),
        (
            200,
            b'<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack>'
            b"</notificationsResponse>",
            False,
            "not a SOAP 1.1 Envelope",
        ),
        (
            200,
            (FIXTURES / "ack.xml").read_bytes().replace(b"2005/09/outbound", b"2005/09/other"),
            False,
            "no notif",
        ),
    ],
)
def test_only_http_200_with_ack_true_is_delivered(status, body, delivered, error_part):
    """"Building a Listener": Ack false, faults, non-XML, other namespaces and non-200 are all failures."""
    raw = (FIXTURES / body).read_bytes() if isinstance(body, str) else body
    outcome = parse_ack(status, raw)
    assert outcome.delivered is delivered
    assert (outcome.error is None) if delivered else (error_part in outcome.error)


# -- the sender over HTTP -------------------------------------------------------------------------
def test_batch_goes_out_as_one_message_with_salesforce_headers(receiver, senders):
    """Three saves batch into one POST that differs from the fixture only in Notification Ids."""
    sender = senders(
        session_id_provider=lambda: SESSION, config=OutboundConfig(require_https_for_session_id=False)
    )
    sender.define(account_om(receiver.url, session=True))
    for record in ACCOUNTS:
        sender.record_changed("Account", record, created=False)
    sender.record_changed("Contact", {"Id": "0035g00000AbCdEAAV"}, created=True)  # no definition: ignored
    assert sender.run_pending() == 1
    [request] = receiver.requests
    headers = request["headers"]
    assert headers["Content-Type"] == "text/xml; charset=utf-8"
    assert headers["SOAPAction"] == '""'
    assert headers["User-Agent"] == "Jakarta Commons-HttpClient/3.1"
    assert headers["Accept-Encoding"] == "gzip"
    assert "Accept" not in headers and "Authorization" not in headers
    ids = notification_ids(request["body"])
    assert len(set(ids)) == 3 and all(is_valid_id(i) and i.startswith("04l") for i in ids)
    expected = (FIXTURES / "outbound-account-batch.xml").read_bytes()
    normalized = request["body"]
    for mine, theirs in zip(ids, FIXTURE_NOTE_IDS, strict=True):
        normalized = normalized.replace(mine.encode(), theirs.encode())
    assert normalized == expected
    parsed = zeep_notifications(request["body"])
    assert [n.sObject.Name for n in parsed.Notification][2] == "Müller GmbH – Köln"
    assert parsed.SessionId == SESSION
    [row] = sender.deliveries()
    json.dumps(row)
    assert row["status"] == "delivered" and row["notification_ids"] == ids and row["next_attempt_at"] is None
    assert row["record_ids"] == [a["Id"] for a in ACCOUNTS]
    assert row["attempts"][0]["http_status"] == 200 and row["attempts"][0]["ack"] is True


def test_definition_is_validated_like_setup():
    """Setup refuses HTTP with Send Session ID ("Considerations for Security") and ports outside
    80/443/1024-65535 ("Setting Up Outbound Messaging")."""
    sender = OutboundSender()
    with pytest.raises(ValueError, match="HTTPS"):
        sender.define(account_om("http://127.0.0.1:5000/outbound/x", session=True))
    with pytest.raises(ValueError, match="port 81"):
        sender.define(account_om("http://127.0.0.1:81/outbound/x"))
    with pytest.raises(ValueError, match="port 80"):
        sender.define(account_om("https://127.0.0.1:80/outbound/x"))
    with pytest.raises(ValueError, match="org_id"):
        sender.define(dataclasses.replace(account_om("http://127.0.0.1:5000/x"), org_id="0015g00000QwErTAAV"))
    with pytest.raises(ValueError, match="max_batch"):
        OutboundSender(max_batch=101)
    sender.define(account_om("http://127.0.0.1:5000/outbound/x"))
    assert [d.name for d in sender.definitions()] == ["Offload_Account"]


@pytest.mark.parametrize("failure", ["nack", "fault", "fault200", "500", "garbage", "ack404", "redirect"])
def test_every_kind_of_failure_is_retried_with_the_same_notification_id(receiver, senders, failure):
    """Anything but 200 + Ack true is retried after the first backoff step (15 s)."""
    clock = FakeClock()
    sender = senders(clock=clock)
    sender.define(account_om(receiver.url))
    receiver.script = [failure, "ack"]
    sender.record_changed("Account", ACCOUNTS[1], created=True)
    assert sender.run_pending() == 1
    [row] = sender.deliveries()
    assert row["status"] == "pending" and row["attempts"][0]["error"]
    clock.advance(14.9)
    assert sender.run_pending() == 0
    clock.advance(0.2)
    assert sender.run_pending() == 1
    [row] = sender.deliveries()
    assert row["status"] == "delivered" and len(row["attempts"]) == 2
    first, second = receiver.bodies()
    assert notification_ids(first) == notification_ids(second)


def test_connection_refused_and_timeout_are_failures(receiver, senders):
    """A dead port and a listener slower than the timeout both count as failed attempts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/outbound/x"
    sender = senders(timeout_s=0.3)
    sender.define(account_om(dead, name="dead"))
    sender.define(account_om(receiver.url, name="slow"))
    receiver.script = ["slow"]
    sender.record_changed("Account", ACCOUNTS[0], created=True)
    assert sender.run_pending() == 2
    errors = {row["definition"]: row["attempts"][0]["error"] for row in sender.deliveries()}
    assert errors == {"dead": "IO Exception: Connection refused", "slow": "Read timed out"}


def test_backoff_doubles_from_15_s_caps_at_2_h_and_drops_after_24_h(receiver, senders):
    """"Understanding Notifications": exponential, at most 2 h apart, dropped when 24 h old (status expired)."""
    clock = FakeClock()
    sender = senders(clock=clock)
    sender.define(account_om(receiver.url))
    receiver.default = "500"
    sender.record_changed("Account", ACCOUNTS[0], created=True)
    assert sender.run_pending() == 1
    waits, last, wait = [], clock.now, 15.0
    created = clock.now
    while last - created + wait < 24 * 3600:
        clock.now = last + wait - 0.001
        assert sender.run_pending() == 0
        clock.now = last + wait + 0.001
        assert sender.run_pending() == 1
        waits.append(wait)
        last, wait = clock.now, min(wait * 2, 7200.0)
    assert waits[:10] == [15, 30, 60, 120, 240, 480, 960, 1920, 3840, 7200]
    assert len(receiver.requests) == 1 + len(waits) == 20
    clock.now = created + 24 * 3600 - 0.01
    assert sender.run_pending() == 0 and sender.deliveries()[0]["status"] == "pending"
    clock.now = created + 24 * 3600 + 0.01
    assert sender.run_pending() == 0
    [row] = sender.deliveries()
    assert row["status"] == "expired" and row["next_attempt_at"] is None and len(row["attempts"]) == 20
    assert row["failure_reason"].startswith("(500)")
    assert sender.wait_idle(0.1)


def test_time_scale_runs_retries_in_real_time(receiver, senders):
    """time_scale=3600: the 15 s and 30 s waits take milliseconds; org time still reads 15 s, 30 s."""
    sender = senders(time_scale=3600)
    sender.define(account_om(receiver.url))
    receiver.script = ["500", "nack", "ack"]
    sender.start()
    started = time.monotonic()
    sender.record_changed("Account", ACCOUNTS[0], created=True)
    assert sender.wait_idle(5)
    assert time.monotonic() - started < 3
    [row] = sender.deliveries()
    assert row["status"] == "delivered"
    stamps = [dt.datetime.fromisoformat(a["at"]) for a in row["attempts"]]
    gaps = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:], strict=False)]
    assert gaps[0] >= 15 and gaps[1] >= 30


def test_24_hours_of_retries_expire_in_two_seconds(receiver, senders):
    """With time_scale=43200 the whole 24 h lifetime passes in 2 s and the message is dropped."""
    sender = senders(time_scale=43200)
    sender.define(account_om(receiver.url))
    receiver.default = "nack"
    sender.start()
    sender.record_changed("Account", ACCOUNTS[0], created=True)
    assert sender.wait_idle(10)
    [row] = sender.deliveries()
    assert row["status"] == "expired" and row["failure_reason"] == "Ack false"
    assert 8 <= len(row["attempts"]) <= 20
    assert row["attempts"][-1]["at"] < row["expires_at"]


def test_wait_idle_drives_delivery_without_a_thread(receiver, senders):
    """wait_idle() delivers by itself when start() was not called."""
    sender = senders(time_scale=3600)
    sender.define(account_om(receiver.url))
    receiver.script = ["500"]
    sender.record_changed("Account", ACCOUNTS[0], created=True)
    assert sender.wait_idle(5)
    assert [a["http_status"] for a in sender.deliveries()[0]["attempts"]] == [500, 200]


def test_batches_hold_at_most_max_batch_and_each_definition_gets_its_own(receiver, senders):
    """Up to max_batch notifications per message; two actions on Account each send their own."""
    sender = senders(max_batch=2)
    sender.define(account_om(receiver.url, name="first"))
    sender.define(account_om(receiver.url, name="second"))
    for i in range(5):
        sender.record_changed("account", ACCOUNTS[i % 3], created=False)
    assert sender.run_pending() == 6
    sizes = sorted(len(notification_ids(b)) for b in receiver.bodies())
    assert sizes == [1, 1, 2, 2, 2, 2]
    assert all(r["status"] == "delivered" for r in sender.deliveries())


def test_latest_record_state_is_sent_even_on_retry(receiver, senders):
    """"Understanding Notifications": "only the latest data is delivered"; Notification Ids stay the same."""
    clock = FakeClock()
    sender = senders(clock=clock)
    sender.define(account_om(receiver.url))
    sender.record_changed("Account", {**ACCOUNTS[1], "Name": "Old"}, created=True)
    sender.record_changed("Account", {**ACCOUNTS[1], "Name": "Newer"}, created=False)
    receiver.script = ["nack"]
    assert sender.run_pending() == 1
    parsed = zeep_notifications(receiver.bodies()[0])
    assert [n.sObject.Name for n in parsed.Notification] == ["Newer", "Newer"]
    sender.record_changed("Account", {**ACCOUNTS[1], "Name": "Newest"}, created=False)
    clock.advance(15)
    assert sender.run_pending() == 2  # the retry plus the new notification's own message
    [retry] = [zeep_notifications(b) for b in receiver.bodies()[1:] if len(notification_ids(b)) == 2]
    assert [n.Id for n in retry.Notification] == [n.Id for n in parsed.Notification]
    assert {n.sObject.Name for n in retry.Notification} == {"Newest"}


def test_deleted_record_is_sent_with_its_id_only(receiver, senders):
    """The help says a deleted record's notification "contains no data".

    The exact XML is not confirmed by Salesforce's documentation.
    """
    sender = senders()
    sender.define(account_om(receiver.url))
    sender.record_changed("Account", ACCOUNTS[0], created=True)
    sender.record_deleted("Account", ACCOUNTS[0]["Id"][:15])
    sender.run_pending()
    [note] = zeep_notifications(receiver.bodies()[0]).Notification
    assert note.sObject.Id == ACCOUNTS[0]["Id"] and note.sObject.Name is None


def test_send_now_is_its_own_message(receiver, senders):
    """On-demand sends return the delivery id and go out as one message of their own."""
    sender = senders()
    sender.define(account_om(receiver.url))
    sender.record_changed("Account", ACCOUNTS[0], created=True)
    delivery_id = sender.send_now("Offload_Account", ACCOUNTS[1:])
    assert sender.run_pending() == 2
    rows = {r["id"]: r for r in sender.deliveries()}
    assert rows[delivery_id]["on_demand"] and rows[delivery_id]["record_ids"] == [
        a["Id"] for a in ACCOUNTS[1:]
    ]
    with pytest.raises(ValueError, match="records"):
        sender.send_now("Offload_Account", [])
    with pytest.raises(KeyError):
        sender.send_now("Nope", ACCOUNTS)


def test_injected_duplicate_sends_the_same_message_twice(receiver, senders):
    """inject(duplicate=1): the next message is POSTed twice with identical bodies, then back to once."""
    sender = senders()
    sender.define(account_om(receiver.url))
    first = sender.send_now("Offload_Account", ACCOUNTS[:1])
    sender.send_now("Offload_Account", ACCOUNTS[1:2])
    sender.inject(duplicate=1)
    assert sender.run_pending() == 2
    bodies = receiver.bodies()
    assert len(bodies) == 3 and bodies[0] == bodies[1] != bodies[2]
    row = next(r for r in sender.deliveries() if r["id"] == first)
    assert [a["duplicate"] for a in row["attempts"]] == [False, True]


def test_injected_out_of_order_reverses_the_queue(receiver, senders):
    """inject(out_of_order=True): the queued messages go out last-in first."""
    sender = senders(max_batch=1)
    sender.define(account_om(receiver.url))
    for record in ACCOUNTS:
        sender.record_changed("Account", record, created=True)
    sender.inject(out_of_order=True)
    sender.run_pending()
    sent = [zeep_notifications(b).Notification[0].sObject.Id for b in receiver.bodies()]
    assert sent == [a["Id"] for a in reversed(ACCOUNTS)]


def test_https_listener_gets_the_session_id_and_tls_is_verified(senders, tmp_path):
    """Over HTTPS the SessionId is sent; a certificate from an unknown CA is a delivery failure."""
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    tls = Receiver(ssl_context=context)
    try:
        trusted = senders(verify=str(tmp_path / "ca.pem"), session_id_provider=lambda: SESSION)
        trusted.define(account_om(tls.url, session=True))
        trusted.send_now("Offload_Account", ACCOUNTS[:1])
        trusted.run_pending()
        assert zeep_notifications(tls.bodies()[0]).SessionId == SESSION
        untrusted = senders()
        untrusted.define(account_om(tls.url, session=True))
        untrusted.send_now("Offload_Account", ACCOUNTS[:1])
        untrusted.run_pending()
        assert untrusted.deliveries()[0]["status"] == "pending"
        assert "SSL" in untrusted.deliveries()[0]["failure_reason"]
    finally:
        tls.close()


def test_a_reply_with_a_doctype_is_a_failed_delivery_and_is_never_expanded():
    """The sender parses listener replies as untrusted XML: a DOCTYPE is refused unread, not expanded."""
    reply = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
             + (FIXTURES / "ack.xml").read_bytes().split(b"?>", 1)[1])
    outcome = parse_ack(200, reply)
    assert not outcome.delivered and "DOCTYPE is disallowed" in outcome.error
    assert "root:" not in outcome.error
