"""The emulator's all-or-none transactions (``OrgState.transaction``): a failure inside undoes exactly the
writes made inside, however they nest, and nothing else; listeners hear only committed work."""

from __future__ import annotations

import pytest

from devkit.org import EmulatedOrg


def test_a_failed_transaction_undoes_its_inserts_updates_deletes_and_events(org: EmulatedOrg) -> None:
    state = org.state
    kept = state.insert("Account", {"Name": "Kept"})["Id"]
    gone = state.insert("Account", {"Name": "To delete"})["Id"]
    events_before = len(state.events)
    heard: list[str] = []
    state.listeners.append(lambda sobject, record, created: heard.append(record["Id"]))
    with pytest.raises(RuntimeError), state.transaction():
        new = state.insert("Account", {"Name": "New"})["Id"]
        state.update(kept, {"Name": "Changed"})
        state.update(kept, {"Name": "Changed twice"})
        state.delete(gone)
        raise RuntimeError("boom")
    assert state.get_record(new) is None
    assert state.get_record(kept)[1]["Name"] == "Kept"
    assert state.get_record(gone)[1]["Name"] == "To delete" and not state.is_deleted(gone)
    assert len(state.events) == events_before and heard == []


def test_an_inner_failure_undoes_only_the_inner_writes(org: EmulatedOrg) -> None:
    state = org.state
    heard: list[str] = []
    state.listeners.append(lambda sobject, record, created: heard.append(record["Name"]))
    with state.transaction():
        outer = state.insert("Account", {"Name": "Outer"})["Id"]
        with pytest.raises(ValueError), state.transaction():
            state.update(outer, {"Name": "Inner change"})
            inner = state.insert("Account", {"Name": "Inner"})["Id"]
            raise ValueError
        state.update(outer, {"Name": "Outer again"})
    assert state.get_record(inner) is None
    assert state.get_record(outer)[1]["Name"] == "Outer again"
    assert heard == ["Outer", "Outer again"], "only committed work is heard, after the commit"
