"""A difficult Salesforce: bursts of 503 / REQUEST_LIMIT_EXCEEDED / UNABLE_TO_LOCK_ROW, expiring tokens,
duplicate and out-of-order Outbound Messages, and a slow org that makes calls time out."""

from __future__ import annotations

import pytest
import redis
from rq.registry import FinishedJobRegistry

from devkit.devstack import LocalStack
from devkit.org.faults import FaultRule
from tests.support.chaos import (
    assert_exactly_once,
    assert_nothing_stuck,
    callout,
    seed_photos,
    wait_all_ended,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.chaos]



def test_error_bursts_and_expired_tokens(chaos_stack: LocalStack, own_redis) -> None:
    conn = redis.Redis.from_url(own_redis.url)
    sources = [cv for _, cv in seed_photos(chaos_stack, 10)]
    faults = chaos_stack.org.state.faults
    # At most one failure per job's first attempt (9 faults, 10 jobs), so each job needs <= 1 retry.
    faults.add(FaultRule(pattern="*/query*", error="SERVER_UNAVAILABLE", count=3))
    faults.add(FaultRule(pattern="*/VersionData", error="REQUEST_LIMIT_EXCEEDED", count=3))
    faults.add(FaultRule(pattern="*/composite/sobjects", method="POST", error="UNABLE_TO_LOCK_ROW", count=3))
    job_ids = []
    for i, cv in enumerate(sources):
        if i == 5:
            chaos_stack.org.state.tokens.expire_all()  # every session dies mid-run: one re-auth, no failure
        status, job_id = callout(chaos_stack, cv)
        assert status == 202 and job_id
        job_ids.append(job_id)
    wait_all_ended(conn, job_ids, 120, chaos_stack)
    assert_exactly_once(chaos_stack, sources)
    assert_nothing_stuck(conn, job_ids)
    assert not faults.rules(), "some injected faults never fired"


def test_duplicate_and_out_of_order_outbound_messages(chaos_stack: LocalStack, own_redis) -> None:
    conn = redis.Redis.from_url(own_redis.url)
    org, sender = chaos_stack.org, chaos_stack.org.state.outbound
    accounts = seed_photos(chaos_stack, 6, sobject="Account")
    wait_for(lambda: all(d["status"] == "delivered" for d in sender.deliveries()), 30, "creation messages", chaos_stack)
    before = len(sender.deliveries())
    for account, _ in accounts[:3]:
        org.state.update(account, {"Name": f"{account} v2"})
    sender.send_now("Offload_Resize_Photos", [org.state.get_record(a)[1] for a, _ in accounts[3:]])
    sender.inject(duplicate=4, out_of_order=True)
    wait_for(lambda: all(d["status"] == "delivered" for d in sender.deliveries()), 60, "the messages", chaos_stack)
    deliveries = sender.deliveries()
    assert any(a["duplicate"] for d in deliveries[before:] for a in d["attempts"]), "no duplicate was sent"
    notifications = {n for d in deliveries for n in d["notification_ids"]}
    registry = FinishedJobRegistry("resize-image", connection=conn)
    wait_for(lambda: len(registry.get_job_ids()) == len(notifications), 60, "one job per notification", chaos_stack)
    job_ids = registry.get_job_ids()
    wait_all_ended(conn, job_ids, 60, chaos_stack)
    assert_exactly_once(chaos_stack, [cv for _, cv in accounts])
    assert_nothing_stuck(conn, job_ids)
    assert len(job_ids) == len(notifications)  # duplicates were answered with the original job


def test_a_slow_org_times_out_calls_and_still_writes_once(own_redis) -> None:
    """OFFLOAD_SALESFORCE_TIMEOUT=2 against a slow org: a read (3 s) and an upload (5.5 s) time out on our
    side; the upload is still handled by the org 3.5 s after we gave up. With a 1 s retry base the retry
    comes back before that late commit can be seen and uploads that variant itself; when the late upload is
    finally handled the org refuses it (DUPLICATE_VALUE on the unique rendition key), so one copy stays."""
    conn = redis.Redis.from_url(own_redis.url)
    env = {"OFFLOAD_JOB_RETRIES": "5", "OFFLOAD_RETRY_BASE_SECONDS": "1", "OFFLOAD_SALESFORCE_TIMEOUT": "2"}
    with LocalStack(redis_url=own_redis.url, workers=1, env=env) as slow:
        sources = [cv for _, cv in seed_photos(slow, 2)]
        faults = slow.org.state.faults
        faults.add(FaultRule(pattern="*/query*", delay=3.0, count=1))
        faults.add(FaultRule(pattern="*/composite/sobjects", method="POST", delay=5.5, count=1))
        job_ids = [callout(slow, cv)[1] for cv in sources]
        assert all(job_ids)
        wait_all_ended(conn, job_ids, 90, slow)
        logs = slow.logs()
        assert "TIMEOUT" in logs
        # The late upload was handled after the retry's copy, and refused (else the window went untested):
        wait_for(lambda: any(code == "DUPLICATE_VALUE" for _, _, code in slow.org.state.refusals), 15,
                 "the org to handle the late upload", slow)
        assert_exactly_once(slow, sources)
        assert_nothing_stuck(conn, job_ids)
