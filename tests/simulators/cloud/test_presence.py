"""The cloud's reading of gateway status and device availability (docs/asyncapi.yaml): a
stale message never wins, a removed device disappears, a dead gateway's devices are offline."""

from __future__ import annotations

import json

from simulators.cloud.presence import Presence

GW = "S001/gw-1"


def doc(state: str, session: int) -> bytes:
    return json.dumps({"state": state, "session": session, "ts": "2026-12-06T10:00:00Z"}).encode()


def test_a_device_message_from_an_older_session_loses() -> None:
    p = Presence()
    p.on_status(GW, doc("online", 7))
    assert p.on_availability(GW, "scanner-1", doc("offline", 7))
    assert not p.on_availability(GW, "scanner-1", doc("online", 6))  # retained from before
    assert p.device_states() == {GW: {"scanner-1": "offline"}}
    assert p.on_availability(GW, "scanner-1", doc("online", 8))
    assert p.device_states() == {GW: {"scanner-1": "online"}}


def test_an_offline_gateway_makes_every_device_offline_until_it_is_back() -> None:
    p = Presence()
    p.on_status(GW, doc("online", 3))
    p.on_availability(GW, "scanner-1", doc("online", 3))
    p.on_availability(GW, "reader-1", doc("online", 3))
    assert p.device_states() == {GW: {"reader-1": "online", "scanner-1": "online"}}
    assert p.on_status(GW, doc("offline", 3))  # its Will
    assert p.device_states() == {GW: {"reader-1": "offline", "scanner-1": "offline"}}
    assert not p.on_status(GW, doc("offline", 2))  # a late Will of an older session
    assert p.on_status(GW, doc("online", 4))
    assert p.device_states()[GW]["scanner-1"] == "online"


def test_an_unknown_gateway_status_counts_as_offline() -> None:
    p = Presence()
    p.on_availability(GW, "scanner-1", doc("online", 1))
    assert p.device_states() == {GW: {"scanner-1": "offline"}}


def test_an_empty_retained_payload_removes_the_device() -> None:
    p = Presence()
    p.on_status(GW, doc("online", 1))
    p.on_availability(GW, "old", doc("online", 1))
    p.on_availability(GW, "keep", doc("online", 1))
    assert p.on_availability(GW, "old", b"")
    assert p.device_states() == {GW: {"keep": "online"}}
    p.on_availability(GW, "keep", b"")
    assert p.device_states() == {}


def test_malformed_messages_change_nothing() -> None:
    p = Presence()
    p.on_status(GW, doc("online", 1))
    p.on_availability(GW, "scanner-1", doc("online", 1))
    for bad in (b"{", b"[]", b'{"state":"maybe","session":2}', b"\xff\xfe"):
        assert not p.on_availability(GW, "scanner-1", bad)
        assert not p.on_status(GW, bad)
    assert p.device_states() == {GW: {"scanner-1": "online"}}
    assert p.status[GW]["state"] == "online"
