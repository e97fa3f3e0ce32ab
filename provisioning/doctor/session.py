"""One MQTT session as the gateway: may it publish under its prefix (ACL), and how far is its
clock from the cloud's (RPC ``clock.now``: warn > 2 s, fail > 30 s).

The probe connects with its own client id (``<client>-doctor``) so the running daemon keeps
its session, and publishes to the gateway's own subtree (``{base}/doctor``), which nobody
subscribes to.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from provisioning.doctor.checks import Check

if TYPE_CHECKING:
    from gateway.config import Config
    from gateway.uplink import Uplink
    from gateway.wire.topics import Topics

SKEW_WARN_S = 2.0
SKEW_FAIL_S = 30.0
ACL_FIX = (
    "the broker's ACL does not allow this gateway to publish under its prefix; "
    "check deploy/mosquitto/storegw.acl"
)


async def check_session(cfg: Config, timeout: float) -> list[Check]:
    """One MQTT session as the gateway: the ACL probe, then the cloud's clock."""
    from gateway.uplink import PublishRefused, Uplink, UplinkError
    from gateway.wire.topics import Topics

    g = cfg.gateway
    topics = Topics(cfg.mqtt.topic_prefix, g.store_id, g.gateway_id)
    client = cfg.mqtt.client_id or f"storegw-{g.store_id}-{g.gateway_id}"
    mqtt = cfg.mqtt.model_copy(
        update={"connect_timeout_s": min(cfg.mqtt.connect_timeout_s, timeout)}
    )
    probe = f"{topics.base}/doctor"
    try:
        async with asyncio.timeout(timeout * 2), Uplink(mqtt, client_id=f"{client}-doctor") as up:
            try:
                payload = json.dumps({"doctor": datetime.now(UTC).isoformat()}).encode()
                await up.publish(probe, payload, qos=1)
            except PublishRefused as exc:
                acl = Check("acl", "fail", f"publish to {probe} refused: {exc.reason}", ACL_FIX)
            else:
                acl = Check("acl", "ok", f"published to {probe} as {client}-doctor (PUBACK)")
            clock = await _skew(up, topics, cfg.mqtt.protocol, timeout)
    except (UplinkError, TimeoutError, OSError, ssl.SSLError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
        fix = (
            "the broker refused this gateway's certificate or client id: check the "
            "certificate (storegw provision status) and the broker's log"
        )
        return [
            Check("acl", "fail", f"cannot connect as the gateway: {reason}", fix),
            Check("clock skew", "warn", "not measured (no broker session)", "fix the acl check"),
        ]
    return [acl, clock]


async def _skew(  # noqa: PLR0911 - one return per finding
    up: Uplink, topics: Topics, protocol: str, timeout: float
) -> Check:
    from gateway.rpc import RpcClient, RpcError, RpcRefused

    if protocol != "5":
        return Check(
            "clock skew", "warn", "not measured (needs MQTT v5)", 'set [mqtt] protocol = "5"'
        )
    reply_topic = f"{topics.base}/doctor/reply"
    rpc = RpcClient(topics.rpc, reply_topic)

    async def send(topic: str, payload: bytes, response: str, correlation: bytes) -> None:
        await up.publish(
            topic, payload, qos=1, response_topic=response, correlation_data=correlation
        )

    async def pump() -> None:
        async for msg in up.messages():
            if msg.topic == reply_topic:
                rpc.resolve(msg.correlation_data, msg.payload)

    await up.subscribe(reply_topic)
    rpc.attach(send)
    reader = asyncio.create_task(pump())
    try:
        sent = time.time()
        try:
            data = await rpc.call("clock.now", {}, timeout=timeout)
        except RpcRefused as exc:
            return Check(
                "clock skew",
                "warn",
                f"the cloud does not tell its time ({exc.code})",
                "update the cloud service (it should answer clock.now)",
            )
        except RpcError as exc:
            return Check(
                "clock skew",
                "warn",
                f"no answer to clock.now: {exc}",
                "is the cloud service running and connected to the broker?",
            )
        received = time.time()
    finally:
        rpc.attach(None)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
    try:
        cloud = datetime.fromisoformat(str(data.get("now")).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return Check("clock skew", "warn", "the cloud's clock.now answer is malformed", None)
    skew = ((sent + received) / 2) - cloud
    finding = (
        f"box is {abs(skew):.2f} s {'ahead of' if skew >= 0 else 'behind'} the cloud "
        f"(round trip {received - sent:.2f} s)"
    )
    fix = "enable NTP (timedatectl set-ntp true) or set the clock; coupons and certificates need it"
    if abs(skew) > SKEW_FAIL_S:
        return Check("clock skew", "fail", finding + " (> 30 s)", fix)
    if abs(skew) > SKEW_WARN_S:
        return Check("clock skew", "warn", finding + " (> 2 s)", fix)
    return Check("clock skew", "ok", finding)
