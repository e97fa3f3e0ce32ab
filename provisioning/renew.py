"""``storegw provision renew``: a new certificate now, over the box's own mTLS identity.

It opens its own short session (client id ``storegw-<store>-<gw>-renew``, so a running
daemon keeps its connection) and asks ``cert.renew`` exactly as the daemon's certificate
watch does (:func:`gateway.certwatch.renew_certificate`).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.events import JsonObject
from gateway.certwatch import renew_certificate
from gateway.config import load_config
from gateway.rpc import RpcError, RpcRefused
from gateway.uplink import Uplink, UplinkError
from gateway.wire.topics import Topics
from provisioning.configfile import ProvisionError


@dataclass(frozen=True, slots=True)
class RenewResult:
    path: Path
    subject: str
    serial: int
    not_after: datetime


async def renew_now(config_path: Path, *, timeout: float = 30.0) -> RenewResult:
    from gateway.rpc import RpcClient

    cfg = load_config(config_path)
    g = cfg.gateway
    if cfg.mqtt.cert_file is None or cfg.mqtt.key_file is None:
        raise ProvisionError("this box has no certificate yet; run `storegw provision enroll`")
    topics = Topics(cfg.mqtt.topic_prefix, g.store_id, g.gateway_id)
    rpc = RpcClient(topics.rpc, topics.rpc_replies)
    try:
        async with Uplink(cfg.mqtt, client_id=f"storegw-{g.store_id}-{g.gateway_id}-renew") as up:
            await up.subscribe(topics.rpc_replies)

            async def send(topic: str, payload: bytes, reply: str, corr: bytes) -> None:
                await up.publish(topic, payload, response_topic=reply, correlation_data=corr)

            async def replies() -> None:
                async for msg in up.messages():
                    if msg.topic == topics.rpc_replies:
                        rpc.resolve(msg.correlation_data, msg.payload)

            async def call(method: str, args: JsonObject, t: float) -> JsonObject:
                return await rpc.call(method, args, t)

            rpc.attach(send)
            reader = asyncio.create_task(replies())
            try:
                cert = await renew_certificate(
                    call, cfg.mqtt, g.store_id, g.gateway_id, timeout=timeout
                )
            finally:
                rpc.attach(None)
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, UplinkError):
                    await reader
    except UplinkError as exc:
        raise ProvisionError(f"cannot connect with the current certificate: {exc}") from None
    except RpcRefused as exc:
        raise ProvisionError(f"the cloud refused: {exc.code}: {exc.message}") from None
    except RpcError as exc:
        raise ProvisionError(f"no answer from the cloud: {exc}") from None
    return RenewResult(
        path=cfg.mqtt.cert_file,
        subject=cert.subject.rfc4514_string(),
        serial=cert.serial_number,
        not_after=cert.not_valid_after_utc,
    )
