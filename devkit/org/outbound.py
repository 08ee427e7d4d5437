"""The org's Outbound Message sender: a SOAP 1.1 client that behaves like Salesforce's queue.

Salesforce's pages, cited below by title:

- "Understanding Notifications":
  https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_notifications.htm
- "Building a Listener":
  https://developer.salesforce.com/docs/platform/api/guide/sforce-api-om-outboundmessaging-listener.html
- "Setting Up Outbound Messaging":
  https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_setting_up.htm
- "Considerations for Security":
  https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_security.htm
- "Considerations for Outbound Messages":
  https://help.salesforce.com/s/articleView?id=platform.workflow_om_considerations.htm

What it copies:

- Queue and retries ("Understanding Notifications"): notifications are queued and a background
  process sends them; a failed message is retried with the interval "increasing exponentially,
  up to a maximum of two hours", and is dropped when 24 hours old (``status="expired"``). The
  first interval is undocumented; 15 s doubling is our own choice, not confirmed by
  Salesforce's documentation, and is configurable (``OutboundConfig.first_retry_s``).
- Success only on HTTP 200 + ``Ack`` true; everything else is retried ("Building a Listener",
  ``parse_ack``).
- Latest data ("Understanding Notifications"): "If the information in the object changes after the notification
  is queued but before it's sent, only the latest data is delivered". The envelope is rendered
  at each attempt from the newest record state, while Notification Ids stay stable.
- Batching ("Understanding Notifications"): "calls are sometimes batched together", up to 100
  per message.
  Notifications for the same definition join the newest unsent message (up to ``max_batch``);
  the background thread waits ``batch_window_s`` (not confirmed by Salesforce's documentation;
  configurable) so they can.
- Duplicates and out-of-order delivery can happen ("Understanding Notifications"): ``inject``
  forces them.
- 60 s reply timeout ("Considerations for Outbound Messages"); endpoint ports 80/443/1024-65535
  ("Setting Up Outbound Messaging"); HTTPS required when Send Session ID is on ("Considerations
  for Security").

Every wait is divided by ``time_scale`` so 24 hours of retries can run in seconds. The HTTP
timeout is a real network timeout and is *not* scaled.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from services.clock import utc_iso
from services.sfids import checksum, to_18

from .outbound_envelope import (
    EnvelopeOptions,
    NotificationData,
    OutboundMessageDefinition,
    build_envelope,
    post_message,
    soap_urls,
    validate_definition,
)

__all__ = ["OutboundConfig", "OutboundMessageDefinition", "OutboundSender"]

log = logging.getLogger("offload.devorg.outbound")

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class OutboundConfig:
    """Knobs for behaviour the public sources leave open. Defaults follow the public captures.

    HTTP headers: ``user_agent`` and ``accept_encoding`` come from one third-party capture, not
    confirmed by Salesforce's documentation (``content_type`` is also seen in
    https://github.com/amp-labs/connectors/pull/3419); ``None`` leaves the header out.
    ``follow_redirects``: not confirmed by Salesforce's documentation (default: a 3xx is a
    failure). Retry: ``first_retry_s`` is not confirmed by Salesforce's documentation; the 2 h
    cap and 24 h lifetime are documented ("Understanding Notifications"). ``batch_window_s``:
    not confirmed by Salesforce's documentation. ``require_https_for_session_id``
    ("Considerations for Security") and ``check_port`` ("Setting Up Outbound Messaging") reject
    endpoint URLs real Setup refuses.
    """

    user_agent: str | None = "Jakarta Commons-HttpClient/3.1"
    accept_encoding: str | None = "gzip"
    content_type: str = "text/xml; charset=utf-8"
    follow_redirects: bool = False
    first_retry_s: float = 15.0
    max_retry_interval_s: float = 2 * 3600.0
    max_age_s: float = 24 * 3600.0
    batch_window_s: float = 1.0
    require_https_for_session_id: bool = True
    check_port: bool = True
    envelope: EnvelopeOptions = field(default_factory=EnvelopeOptions)


@dataclass
class _Delivery:
    """One SOAP message: its notifications and its retry state (the Setup monitor's row)."""

    id: str
    definition: str
    notes: list[tuple[str, str]]  # (notification id, record id 18)
    created: float
    expires: float
    next_attempt: float | None
    order: int
    on_demand: bool = False
    status: str = "pending"
    attempts: list[dict] = field(default_factory=list)
    failure_reason: str | None = None
    in_flight: bool = False
    duplicate: bool = False


class OutboundSender:
    """Queues notifications, delivers them over HTTP and retries them the way Salesforce does."""

    def __init__(
        self,
        *,
        session_id_provider: Callable[[], str] | None = None,
        verify: bool | str = True,
        time_scale: float = 1.0,
        timeout_s: float = 60.0,
        max_batch: int = 100,
        clock: Callable[[], float] = time.monotonic,
        config: OutboundConfig | None = None,
    ):
        if not 1 <= max_batch <= 100:
            raise ValueError(f"max_batch must be 1..100 (the WSDL's maxOccurs is 100), not {max_batch}")
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self._session_id_provider = session_id_provider
        self._verify, self._scale, self._timeout, self._max_batch = verify, time_scale, timeout_s, max_batch
        self._clock, self._cfg = clock, config or OutboundConfig()
        self._clock0, self._wall0 = clock(), time.time()
        self._cond = threading.Condition()
        self._definitions: dict[str, OutboundMessageDefinition] = {}
        self._deliveries: dict[str, _Delivery] = {}
        self._open: dict[str, str] = {}  # definition name -> id of the unsent message still filling up
        self._latest: dict[tuple[str, str], dict | None] = {}  # (sobject lower, record id) -> state
        self._order = itertools.count()
        self._note_seq = itertools.count(secrets.randbelow(62**8))  # random start: ids unique across runs
        self._fake_sessions: dict[str, str] = {}
        self._duplicates = 0
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- configuration ------------------------------------------------------------------------
    def define(self, definition: OutboundMessageDefinition) -> None:
        """Add or replace an Outbound Message action, validated like Setup validates it."""
        validate_definition(
            definition,
            https_for_session_id=self._cfg.require_https_for_session_id,
            check_port=self._cfg.check_port,
        )
        with self._cond:
            self._definitions[definition.name] = definition

    def definitions(self) -> list[OutboundMessageDefinition]:
        """Every defined action, in definition order."""
        with self._cond:
            return list(self._definitions.values())

    # -- queueing -----------------------------------------------------------------------------
    def record_changed(self, sobject: str, record: dict, created: bool) -> None:
        """Queue a notification for every definition on ``sobject`` (the org calls this after DML).

        ``created`` is accepted for the caller's benefit: definitions carry no rule criteria,
        so every create and update fires them. The record's state is kept as the *latest*
        data; what is sent is whatever is latest at delivery time ("Understanding Notifications").
        """
        with self._cond:
            record_id = self._remember(sobject, record)
            for d in self._definitions.values():
                if d.sobject.lower() == sobject.lower():
                    self._add_note(d, record_id)
            self._cond.notify_all()

    def record_deleted(self, sobject: str, record_id: str) -> None:
        """Mark a record deleted: queued notifications for it are sent with ``sf:Id`` only.

        See "Understanding Notifications".
        """
        with self._cond:
            self._latest[(sobject.lower(), to_18(record_id))] = None

    def send_now(self, definition_name: str, records: list[dict]) -> str:
        """Send ``records`` as one message of their own, due immediately; returns its delivery id."""
        with self._cond:
            d = self._definitions[definition_name]
            if not 1 <= len(records) <= self._max_batch:
                raise ValueError(f"send_now takes 1..{self._max_batch} records, got {len(records)}")
            record_ids = [self._remember(d.sobject, record) for record in records]
            delivery = self._new_delivery(d, on_demand=True)
            delivery.next_attempt = self._clock()
            delivery.notes.extend((self._note_id(d), record_id) for record_id in record_ids)
            self._cond.notify_all()
            return delivery.id

    def inject(self, *, duplicate: int = 0, out_of_order: bool = False) -> None:
        """Force what Salesforce says can happen ("Understanding Notifications"): duplicates, and out-of-order
        delivery.

        ``duplicate=N``: each of the next N message attempts is POSTed twice, back to back,
        with the same body. ``out_of_order``: the messages queued right now swap their slots
        in the schedule so they go out in the reverse of queue order.
        """
        if duplicate < 0:
            raise ValueError("duplicate must be >= 0")
        with self._cond:
            self._duplicates += duplicate
            if out_of_order:
                queued = sorted(
                    (
                        x
                        for x in self._deliveries.values()
                        if x.status == "pending" and not x.in_flight and x.next_attempt is not None
                    ),
                    key=lambda x: (x.next_attempt, x.order),
                )
                slots = [(x.next_attempt, x.order) for x in queued]
                for x, (when, order) in zip(queued, reversed(slots), strict=True):
                    x.next_attempt, x.order = when, order
            self._cond.notify_all()

    def retry_now(self, delivery_id: str | None = None) -> None:
        """Setup's "Retry" on the Outbound Messages monitor: make one (or every) pending message due."""
        with self._cond:
            for x in self._deliveries.values():
                if x.status == "pending" and delivery_id in (None, x.id):
                    x.next_attempt = self._clock()
            self._cond.notify_all()

    # -- delivery -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the background sender.

        "A separate background process performs the actual sending" ("Understanding Notifications").
        """
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._loop, name="outbound-sender", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the background sender; queued messages stay queued."""
        with self._cond:
            thread, self._thread, self._stopping = self._thread, None, True
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout=self._timeout + 5)

    def run_pending(self) -> int:
        """Attempt every message that is due, plus every never-tried one; returns messages attempted."""
        return self._step(include_fresh=True)

    def wait_idle(self, timeout: float) -> bool:
        """Wait (real seconds) until nothing is pending; drives delivery itself if not started."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                pending = [x for x in self._deliveries.values() if x.status == "pending"]
                if not pending:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                if self._thread is not None:
                    self._cond.wait(min(remaining, 0.05))
                    continue
                idle = [self._due(x) for x in pending if not x.in_flight]
                wait = min(idle) - self._clock() if idle else 0.01
            if wait > 0:
                time.sleep(min(wait, remaining, 0.05))
            else:
                self._step(include_fresh=False)

    def deliveries(self) -> list[dict]:
        """A JSON-able view like Setup > Outbound Messages, oldest first."""
        with self._cond:
            return [
                {
                    "id": x.id,
                    "definition": x.definition,
                    "notification_ids": [n for n, _ in x.notes],
                    "record_ids": [r for _, r in x.notes],
                    "status": x.status,
                    "on_demand": x.on_demand,
                    "attempts": [dict(a) for a in x.attempts],
                    "failure_reason": x.failure_reason,
                    "created_at": self._iso(x.created),
                    "expires_at": self._iso(x.expires),
                    "next_attempt_at": None if x.status != "pending" else self._iso(self._due(x)),
                }
                for x in self._deliveries.values()
            ]

    # -- internals ----------------------------------------------------------------------------
    def _remember(self, sobject: str, record: dict) -> str:
        record_id = to_18(str(record.get("Id") or record.get("id") or ""))
        self._latest[(sobject.lower(), record_id)] = dict(record)
        return record_id

    def _note_id(self, d: OutboundMessageDefinition) -> str:
        """A fresh ``04l`` Notification Id on the org's pod, with a valid checksum ("Understanding Notifications")."""
        n, chars = next(self._note_seq), ""
        for _ in range(10):
            n, rem = divmod(n, 62)
            chars = _BASE62[rem] + chars
        id15 = "04l" + d.org_id[3:5] + chars
        return id15 + checksum(id15)

    def _new_delivery(self, d: OutboundMessageDefinition, *, on_demand: bool = False) -> _Delivery:
        now = self._clock()
        x = _Delivery(
            id=uuid.uuid4().hex[:16],
            definition=d.name,
            notes=[],
            created=now,
            expires=now + self._cfg.max_age_s / self._scale,
            next_attempt=now + self._cfg.batch_window_s / self._scale,
            order=next(self._order),
            on_demand=on_demand,
        )
        self._deliveries[x.id] = x
        return x

    def _add_note(self, d: OutboundMessageDefinition, record_id: str) -> None:
        x = self._deliveries.get(self._open.get(d.name, ""))
        if x is None or x.attempts or x.in_flight or x.status != "pending" or len(x.notes) >= self._max_batch:
            x = self._new_delivery(d)
            self._open[d.name] = x.id
        x.notes.append((self._note_id(d), record_id))

    def _due(self, x: _Delivery) -> float:
        return x.next_attempt if x.next_attempt is not None else x.expires

    def _iso(self, at: float) -> str:
        """Org time: the wall clock at start plus *scaled* elapsed time, so 24 h of retries read as 24 h."""
        moment = dt.datetime.fromtimestamp(self._wall0 + (at - self._clock0) * self._scale, dt.UTC)
        return utc_iso(moment, timespec="milliseconds")

    def _loop(self) -> None:
        while True:
            self._step(include_fresh=False)
            with self._cond:
                if self._stopping:
                    return
                pending = [
                    self._due(x)
                    for x in self._deliveries.values()
                    if x.status == "pending" and not x.in_flight
                ]
                wait = min(pending) - self._clock() if pending else 0.25
                if wait > 0:
                    self._cond.wait(min(wait, 0.25))

    def _step(self, *, include_fresh: bool) -> int:
        with self._cond:
            now, batch = self._clock(), []
            for x in self._deliveries.values():
                if x.status != "pending" or x.in_flight:
                    continue
                if now >= x.expires:
                    x.status, x.next_attempt = "expired", None
                    log.warning("outbound message %s dropped: %s s old", x.id, self._cfg.max_age_s)
                elif self._due(x) <= now or (include_fresh and not x.attempts):
                    batch.append(x)
            batch.sort(key=lambda x: (self._due(x), x.order))
            for x in batch:
                x.in_flight, x.duplicate = True, self._duplicates > 0
                self._duplicates -= x.duplicate
            self._cond.notify_all()
        for x in batch:
            self._attempt(x)
        return len(batch)

    def _attempt(self, x: _Delivery) -> None:
        """POST one message (twice if a duplicate was injected) and record the outcome."""
        try:
            with self._cond:
                d = self._definitions[x.definition]
                notes = [
                    NotificationData(n, d.sobject, self._latest.get((d.sobject.lower(), r)), r)
                    for n, r in x.notes
                ]
            enterprise_url, partner_url = soap_urls(d.instance_url, d.api_version, d.org_id)
            body = build_envelope(
                org_id=d.org_id,
                action_id=d.action_id,
                session_id=self._session(d),
                enterprise_url=enterprise_url,
                partner_url=partner_url,
                fields=d.fields,
                notifications=notes,
                options=self._cfg.envelope,
            )
        except (KeyError, TypeError, ValueError) as exc:  # cannot even build it: no retry can help
            with self._cond:
                x.in_flight, x.status, x.failure_reason, x.next_attempt = False, "failed", str(exc), None
                self._cond.notify_all()
            return
        results = [self._post(d.endpoint_url, body) for _ in range(2 if x.duplicate else 1)]
        with self._cond:
            for i, result in enumerate(results):
                x.attempts.append({**result, "duplicate": i > 0})
            x.in_flight = False
            if any(r["error"] is None for r in results):
                x.status, x.next_attempt, x.failure_reason = "delivered", None, None
            else:
                x.failure_reason = results[-1]["error"]
                real = [a for a in x.attempts if not a["duplicate"]]
                wait = min(self._cfg.first_retry_s * 2 ** (len(real) - 1), self._cfg.max_retry_interval_s)
                nxt = self._clock() + wait / self._scale
                x.next_attempt = nxt if nxt < x.expires else None  # None: dropped at the 24 h mark
                log.info("outbound message %s attempt %d failed: %s", x.id, len(real), x.failure_reason)
            self._cond.notify_all()

    def _session(self, d: OutboundMessageDefinition) -> str | None:
        if not d.include_session_id:
            return None
        if self._session_id_provider is not None:
            return self._session_id_provider()
        # No org session plumbing given: a session-shaped placeholder ("<org15>!AQ...").
        return self._fake_sessions.setdefault(d.org_id, f"{d.org_id[:15]}!AQ{secrets.token_urlsafe(48)}")

    def _post(self, url: str, body: bytes) -> dict:
        cfg = self._cfg
        headers = {
            "Content-Type": cfg.content_type,
            "SOAPAction": '""',
            "User-Agent": cfg.user_agent,
            "Accept-Encoding": cfg.accept_encoding,
        }
        at = self._iso(self._clock())
        result = post_message(
            url,
            body,
            {k: v for k, v in headers.items() if v is not None},
            timeout_s=self._timeout,
            verify=self._verify,
            follow_redirects=self._cfg.follow_redirects,
        )
        return {"at": at, **result}
