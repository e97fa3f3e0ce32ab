"""Fuzz targets for commands: through the gateway's one dispatcher (as ``cmd/<name>`` on
MQTT delivers them) and through the local control socket (one JSON line each)."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable
from typing import Any, cast

from core.events import JsonObject
from gateway.bridge import Bridge
from gateway.config import parse_config
from gateway.daemon import Gateway
from gateway.uplink import Inbound, Uplink
from tests.fuzz import core
from tests.fuzz.core import ContractBroken, Target
from tests.fuzz.identities import JWKS, NOW
from tests.fuzz.strategies import DEEP_JSON, NESTED_JSON, json_variants
from tests.fuzz.targets_labels import LABEL_DEVICE


def _config(data_dir: str) -> dict[str, Any]:
    return {
        "gateway": {"store_id": "S001", "gateway_id": "gw-1", "data_dir": data_dir},
        "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "api": {"listen": "127.0.0.1:0"},
        "counter": {"cloud_keys_file": str(core.workdir() / "pinned-keys.json")},
        "kiosks": [{"name": "kiosk-1", "devices": ["scanner-1"]}],
        "devices": [  # configured, never started: commands reach their supervisors and stores
            {"id": "scanner-1", "kind": "scanner", "port": "/dev/null"},
            {**LABEL_DEVICE, "url": "http://127.0.0.1:9"},
        ],
    }


@functools.cache
def gateway() -> Gateway:
    """A real Gateway (every command registered, kiosks included) with its stores open and
    no broker: commands and counter operations run for real (offline: the cloud is never
    reachable) against SQLite in a scratch directory, trusting the fuzz cloud key."""
    data_dir = core.workdir() / "gateway"
    data_dir.mkdir(exist_ok=True)
    (core.workdir() / "pinned-keys.json").write_text(json.dumps(JWKS))
    gw = Gateway(parse_config(_config(str(data_dir))))
    assert gw.counter is not None
    gw.counter.clock = lambda: NOW  # the seeds' coupons and member codes are valid then

    async def open_stores() -> None:
        await gw.outbox.__aenter__()
        assert gw.counter is not None
        await gw.counter.__aenter__()
        await gw.pricing.__aenter__()

    core.run(open_stores())
    return gw


def close_gateway() -> None:
    if not gateway.cache_info().currsize:
        return
    gw = gateway()
    gateway.cache_clear()

    async def close_stores() -> None:
        await gw.pricing.__aexit__(None, None, None)
        assert gw.counter is not None
        await gw.counter.__aexit__(None, None, None)
        await gw.outbox.__aexit__(None, None, None)

    core.run(close_stores())


COMMAND_LIMIT_S = 5.0
"""No seed asks a command to wait (``wait_s``, ``device.test``): an answer slower than this is
a hang, reported instead of stalling the suite."""


def answered(call: Awaitable[JsonObject]) -> JsonObject:
    """Run one dispatch and hold it to the contract of every command path: an answer object
    the bridge (or the control socket) can publish, never an exception, never ``internal``
    (a handler crash the catch-all hid), and within :data:`COMMAND_LIMIT_S`."""

    async def bounded() -> JsonObject:
        try:
            async with asyncio.timeout(COMMAND_LIMIT_S):
                return await call
        except TimeoutError:
            raise ContractBroken(f"no answer within {COMMAND_LIMIT_S} s") from None

    result = core.run(bounded())
    if not isinstance(result.get("ok"), bool):
        raise ContractBroken(f"answer without ok: {result!r:.200}")
    error = result.get("error")
    if isinstance(error, dict) and error.get("code") == "internal":
        raise ContractBroken("a command handler crashed (answered 'internal')")
    json.dumps(result, separators=(",", ":")).encode()  # what the bridge publishes
    return result


class _Published:
    """The uplink as ``Bridge._answer`` sees it: records what it would publish."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []

    async def publish(
        self, topic: str, payload: bytes, *, correlation_data: bytes | None = None, **_: object
    ) -> None:
        self.sent.append((topic, payload, correlation_data))


CORRELATION = b"corr-1"
OWN_REPLY_SPACES = ("storegw/v1/S001/gw-1/cmd-result", "storegw/v1/cloud/cmd-reply/S001/gw-1")
"""Where this gateway may publish an answer (stated here, not taken from ``Topics``)."""


def _own(topic: str) -> bool:
    return not any(c in topic for c in "+#\0") and any(
        topic == space or topic.startswith(space + "/") for space in OWN_REPLY_SPACES
    )


def command(data: bytes) -> object:
    """``name \\n response topic \\n payload``: a command as it arrives on ``cmd/<name>``
    (MQTT v5 response topic, empty for none), answered by the bridge as in a session: the
    response-topic rule, the dispatcher, one result published where it may go."""
    name_raw, _, rest = data.partition(b"\n")
    reply_raw, _, payload = rest.partition(b"\n")
    name = name_raw.decode("utf-8", "replace")
    if any(c in name for c in "+#\0"):
        return None  # no broker delivers a topic name with these
    gw = gateway()
    topics = gw.topics
    reply = reply_raw.decode("utf-8", "replace") or None
    uplink = _Published()
    msg = Inbound(topics.base + "/cmd/" + name, payload, reply, CORRELATION)
    answered(_answer(gw.bridge, cast(Uplink, uplink), name, msg))
    if len(uplink.sent) != 1:
        raise ContractBroken(f"{len(uplink.sent)} answers published for one command")
    topic, body, correlation = uplink.sent[0]
    expected = reply if reply and _own(reply) else topics.command_result(name)
    if topic != expected or correlation != CORRELATION:
        raise ContractBroken(f"answer published to {topic!r:.100} ({correlation!r})")
    return answered(_result(body))


async def _answer(bridge: Bridge, uplink: Uplink, name: str, msg: Inbound) -> JsonObject:
    await bridge._answer(uplink, name, msg)
    return {"ok": True}


async def _result(body: bytes) -> JsonObject:
    result = json.loads(body)  # the bridge's own output, not outside input
    if not isinstance(result, dict):
        raise ContractBroken(f"a result that is not an object: {body[:100]!r}")
    return cast(JsonObject, result)


def control_line(data: bytes) -> object:
    """One request line on the control socket (the provisioning CLI, technicians)."""
    gw = gateway()
    return answered(gw.control.handle(data))


PLAIN_SEEDS = (
    b'ping\n\n{"id":"r-1","args":{"echo":"hello"}}',
    b"status\n\n{}",
    b"config.get\n\n",
    b'labels.list\n\n{"args":{}}',
    b'labels.bind\n\n{"id":"r-2","args":{"label":"0000021B3C4D5E6F","sku":"4006381333931"}}',
    b'labels.unbind\n\n{"args":{"label":"0000021B3C4D5E6F"}}',
    b'prices.update\n\n{"args":{"items":[{"sku":"4006381333931","name":"Apples 1 kg",'
    b'"price":"2.49","currency":"EUR","member_price":"1.99","promo_text":"Autumn"}]}}',
    b'prices.flash_sale\n\n{"args":{"sale_id":"fs-1","start":"2026-11-23T10:00:00Z",'
    b'"end":"2099-11-23T12:00:00Z","promo_text":"Today","skus":["4006381333931"],'
    b'"percent_off":"20"}}',
    b'prices.flash_sale.cancel\n\n{"args":{"sale_id":"fs-1"}}',
    # Not device.test: it waits (up to 300 s) for a reading by design, so it is no parser.
    b'kiosk.message\n\n{"args":{"kiosk":"kiosk-1","text":{"zh":"\\u4f60\\u597d","en":"Hi"}}}',
    b'label.show\n\n{"args":{"device":"labels-1","label":"0000021B3C4D5E6F","title":"Apples"}}',
    b'label.flash\n\n{"args":{"device":"labels-1","label":"0000021B3C4D5E6F","color":"red"}}',
    b'label.status\n\n{"args":{"device":"labels-1","label":"0000021B3C4D5E6F"}}',
)
COMMAND_SEEDS = (
    *PLAIN_SEEDS,
    # MQTT v5 response topics: its own reply space is obeyed, anything else refused.
    b'ping\nstoregw/v1/cloud/cmd-reply/S001/gw-1/r-7\n{"id":"r-7"}',
    b"status\nstoregw/v1/S001/gw-1/cmd-result/status/x\n{}",
    b"ping\nstoregw/v1/S002/gw-1/cmd-result/ping\n{}",
    b"ping\nstoregw/v1/cloud/keys\n{}",
    b"ping\nstoregw/v1/cloud/cmd-reply/S001/gw-1/+\n{}",
    b"ping\n\n" + DEEP_JSON,
)
COMMAND_DOCS: list[Any] = [json.loads(s.split(b"\n", 2)[2] or b"{}") for s in PLAIN_SEEDS]
COMMAND = Target(
    name="gateway.command",
    parse=command,
    allowed=(),  # the dispatcher answers everything with a result object
    seeds=COMMAND_SEEDS,
    structured=(
        json_variants(COMMAND_DOCS).map(lambda body: b"prices.update\n\n" + body)
        | json_variants(COMMAND_DOCS).map(lambda body: b"ping\n\n" + body)
        | NESTED_JSON.map(lambda body: b"status\n\n" + body)
    ),
    max_len=270_000,
)


def _line(seed: bytes) -> bytes:
    name, _, payload = seed.replace(b"\n\n", b"\n", 1).partition(b"\n")  # no reply topic
    doc = json.loads(payload or b"{}")
    return json.dumps({"command": name.decode(), **doc}).encode() + b"\n"


CONTROL = Target(
    name="gateway.control_line",
    parse=control_line,
    allowed=(),  # handle() answers every line with a result object
    seeds=(*(_line(s) for s in PLAIN_SEEDS), b'{"command":"ping","args":' + DEEP_JSON),
    structured=json_variants([{"command": "ping", **d} for d in COMMAND_DOCS]) | NESTED_JSON,
    max_len=270_000,
)

COMMAND_TARGETS = (COMMAND, CONTROL)
