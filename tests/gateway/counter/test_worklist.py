"""Conflicts are work items: staff acknowledge and resolve them through the local API or an
MQTT command, and the cloud sees each state change as an event."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.counter.conflict_models import ConflictAction
from gateway.counter.errors import CounterError
from simulators.cloud import CloudService, seed
from tests.gateway.counter.test_wallet import API, identify, pay
from tests.support.counter import (
    cloud_events,
    offline,
    online_gateway,
    paid_elsewhere,
    reconnected,
)
from tests.support.link import Link
from tests.support.waiting import eventually


async def test_a_shortfall_is_acknowledged_then_resolved_and_the_cloud_hears_both(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    async with online_gateway(link, tmp_path / "gw") as (gw, counter):
        await identify(counter, "till-1")
        await offline(gw, link)
        await counter.pay(pay("P-OFF", "20.00"), API)
        await paid_elsewhere(cloud, seed.ALICE, "15.00")
        await reconnected(gw, link)
        worklist = counter.worklist
        items = await eventually(
            worklist.items, lambda found: len(found) == 1, timeout=15, message="the conflict"
        )
        assert (items[0].conflict_id, items[0].state, items[0].reason) == (
            "payment:P-OFF",
            "open",
            "shortfall",
        )
        seen = await worklist.acknowledge("payment:P-OFF", ConflictAction(by="S-1"))
        assert (seen.state, seen.acknowledged_by) == ("acknowledged", "S-1")
        no_note = await cloud.send_command(
            "S001", "gw-1", "conflicts.resolve", {"conflict_id": "payment:P-OFF", "by": "S-2"}
        )
        assert (no_note["ok"], no_note["error"]["code"]) == (False, "bad_args")
        # head office resolves it over MQTT, as the cloud would
        reply = await cloud.send_command(
            "S001",
            "gw-1",
            "conflicts.resolve",
            {"conflict_id": "payment:P-OFF", "by": "HQ-3", "note": "member paid 10.00 cash"},
        )
        assert reply["ok"] is True, reply
        assert reply["data"]["state"] == "resolved"
        again = await worklist.resolve(
            "payment:P-OFF", ConflictAction(by="HQ-3", note="member paid 10.00 cash")
        )
        assert again.state == "resolved"  # the same resolution again: the same answer
        with pytest.raises(CounterError) as closed:
            await worklist.acknowledge("payment:P-OFF", ConflictAction(by="S-1"))
        assert (closed.value.code, closed.value.details) == (
            "already_resolved",
            {"resolved_by": "HQ-3", "note": "member paid 10.00 cash"},
        )
        with pytest.raises(CounterError) as unknown:
            await worklist.acknowledge("coupon:NOPE", ConflictAction(by="S-1"))
        assert unknown.value.code == "not_found"
        listed = await cloud.send_command("S001", "gw-1", "conflicts.list", {"state": "open"})
        assert listed["data"] == {"items": []}
        refused = await cloud.send_command(
            "S001", "gw-1", "conflicts.acknowledge", {"conflict_id": "payment:P-OFF", "by": "X"}
        )
        assert (refused["ok"], refused["error"]["code"]) == (False, "already_resolved")
        acknowledged = await cloud_events(cloud, "conflict.acknowledged")
        resolved = await cloud_events(cloud, "conflict.resolved")
        status = await counter.status()
    assert [(e["conflict_id"], e["by"], e["was"]) for e in acknowledged] == [
        ("payment:P-OFF", "S-1", "open")
    ]
    assert [(e["by"], e["note"], e["was"]) for e in resolved] == [
        ("HQ-3", "member paid 10.00 cash", "acknowledged")
    ]
    assert status["conflict_items"][0]["resolved_by"] == "HQ-3"
