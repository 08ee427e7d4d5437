"""Outbound Messages through the emulator's admin API: define, fire on record change, watch deliveries."""

from __future__ import annotations

from devkit.embedded_redis import free_port
from devkit.waiting import wait_until


def _wait(predicate):
    return wait_until(predicate, 10, "a delivery attempt", interval=0.05)


def test_define_fire_and_watch_a_failing_delivery(org) -> None:
    admin = org.session()
    base = f"{org.base_url}/_emulator"
    dead_endpoint = f"http://127.0.0.1:{free_port()}/outbound/resize-image"
    created = admin.post(f"{base}/outbound-messages", json={
        "name": "Resize", "sobject": "Account", "fields": ["Id", "Name"], "endpoint_url": dead_endpoint})
    assert created.status_code == 201, created.text
    assert created.json()["action_id"].startswith("04k") and created.json()["org_id"] == org.org_id
    account = admin.post(f"{base}/records", json={"sobject": "Account", "fields": {"Name": "Acme"}}).json()["id"]
    delivery = _wait(lambda: next((d for d in admin.get(f"{base}/deliveries").json()
                                   if account in d["record_ids"] and d["attempts"]), None))
    attempt = delivery["attempts"][0]
    assert not attempt["ack"] and attempt["http_status"] is None and attempt["error"], (
        "a refused connection is a failed attempt, retried later")
    assert delivery["status"] == "pending" and delivery["next_attempt_at"]


def test_send_now_requires_known_records(org) -> None:
    admin = org.session()
    base = f"{org.base_url}/_emulator"
    admin.post(f"{base}/outbound-messages", json={
        "name": "Resize", "sobject": "Account", "endpoint_url": f"http://127.0.0.1:{free_port()}/x"})
    missing = admin.post(f"{base}/outbound-messages/Resize/send", json={"record_ids": ["0015g00000QwErTAAV"]})
    assert missing.status_code == 400 and "no record" in missing.json()["error"]
