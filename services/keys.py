"""Every Redis key Offload writes besides rq's own, in one place.

All of them start with ``offload:``, so an operator can tell them from rq's ``rq:*`` keys at a
glance (``redis-cli --scan --pattern 'offload:*'``), and no two modules can pick the same name.
"""

from __future__ import annotations

PREFIX = "offload:"

# --- intake (web) ------------------------------------------------------------------------------------
LEDGER_PREFIX = PREFIX + "ledger:"
"""``ledger:<sha256 of the delivery key>`` -> job id: one delivery is taken once (``OFFLOAD_DEDUPE_TTL``)."""

IDEMPOTENCY_PREFIX = PREFIX + "idem:"
"""``idem:<sha256 of process and Idempotency-Key>`` -> digest of the body that took the key (``OFFLOAD_DEDUPE_TTL``)."""

OWN_OUTPUT_PREFIX = PREFIX + "own:"
"""``own:<18-char id>``: a record Offload wrote itself; the receiver skips work for it (loop guard)."""

# --- metrics (web and workers) -----------------------------------------------------------------------
METRICS_PREFIX = PREFIX + "metrics:"
INTAKE_COUNTERS = METRICS_PREFIX + "intake"
"""Hash the enqueue script counts into: ``enqueued|<process>``, ``duplicates|...``, ``skipped|...``."""
JOB_ATTEMPTS = METRICS_PREFIX + "attempts"
"""Hash ``<process>|<outcome>`` -> job attempts."""
JOB_DURATION = METRICS_PREFIX + "job_duration"
"""Histogram hash: ``<process>|<le>``, ``<process>|sum``, ``<process>|count``."""
QUEUE_WAIT = METRICS_PREFIX + "queue_wait"
"""Histogram hash, as :data:`JOB_DURATION`."""
SALESFORCE_CALLS = METRICS_PREFIX + "salesforce_calls"
"""Counter of Salesforce API calls the workers made."""

# --- Salesforce (workers) ----------------------------------------------------------------------------
SALESFORCE_API_USAGE = PREFIX + "sf-api-usage"
"""JSON ``{"used", "limit", "at"}``: the org's daily API usage, from the latest ``Sforce-Limit-Info`` or ``/limits``."""
API_USAGE_RECHECK = PREFIX + "sf-api-usage:recheck"
"""Held (SET NX, 60 s) by the one process reading ``/limits`` again while jobs pause at the API ceiling."""
CONTENT_PUBLICATIONS = PREFIX + "sf-content-publications"
"""Hash ``limit``, ``remaining``, ``at`` (the org's ``ContentPublicationLimit`` from ``/limits``) and ``published``
(ContentVersions the workers created since that reading): the estimate of the org's daily file allowance."""
CONTENT_PUBLICATIONS_RECHECK = PREFIX + "sf-content-publications:recheck"
"""Held (SET NX, 60 s) by the one process reading ``/limits`` for a fresh ``ContentPublicationLimit``."""
PAUSE_REASON = PREFIX + "pause-reason"
"""Why the workers paused themselves (a deferred job's code and message), kept as long as the pause."""
TOKEN_PREFIX = PREFIX + "sf-token:"
"""``sf-token:<hash of the identity>``: a cached OAuth access token, shared by a dyno's work processes."""
SESSION_PREFIX = PREFIX + "session:"
"""``session:<random ref>``: an Outbound Message session id, encrypted, for the job that carries the ref."""

# --- renditions (workers) ----------------------------------------------------------------------------
RENDITION_LOCK_PREFIX = PREFIX + "lock:rendition:"
"""``lock:rendition:<source ContentVersion id>``: one job at a time writes a source's renditions."""


# --- backfill (CLI and workers) ----------------------------------------------------------------------
BACKFILL_ACTIVE = PREFIX + "backfill:active"
"""The id of the org's one active backfill run (set NX at ``offload backfill start``, deleted when it ends)."""
BACKFILL_RUN_PREFIX = PREFIX + "backfill:run:"
"""``backfill:run:<id>``: the run's hash (selection, state, cursor, counters); ``...:pending`` the candidate file
Ids read from Salesforce and not queued yet; ``...:done``/``:failed``/``:skipped`` the job ids of each outcome."""
BACKFILL_RUNS = PREFIX + "backfill:runs"
"""The latest run ids, newest first (``offload backfill status`` of a run that has ended)."""
BACKFILL_FEEDING = PREFIX + "backfill:feeding"
"""Held (SET NX PX) by the one feeder advancing the cursor, whichever dyno it is on."""
