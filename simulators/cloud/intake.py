"""What the cloud takes in from gateways: events recorded (deduplicated by id, persisted, the
seqs mirrored for :meth:`CloudIntake.report`) and counter RPCs answered.

The cloud may write almost anywhere, so it must not be a confused deputy: an RPC is answered
only when its response topic is one of the requesting gateway's own reply topics
(:data:`~simulators.cloud.rpc.REPLY_TOPICS` under the base of the topic the request arrived
on, which only that gateway's certificate may publish to); any other request is neither run
nor answered, only logged and counted.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import ValidationError

from simulators.cloud import report
from simulators.cloud.delivery import Confirmations
from simulators.cloud.presence import Presence
from simulators.cloud.rpc import METHODS, REPLY_TOPICS, Envelope, RpcAnswers
from simulators.cloud.store import Json, Refusal, RefusalCode

log = logging.getLogger(__name__)

EventPrinter = Callable[[Json, bool], None]
RpcPrinter = Callable[[str, str, Json, Json], None]
"""(method, "store/gateway", args, reply)"""


class CloudIntake(RpcAnswers):
    """Events and RPCs from gateways, mixed into :class:`~simulators.cloud.service.CloudService`."""

    prefix: str
    on_event: EventPrinter | None
    on_rpc: RpcPrinter | None
    confirmations: Confirmations
    presence: Presence
    status: dict[str, Json]
    _seqs: dict[str, set[int]]
    _by_kind: Counter[str]
    _replayed: int
    _counters: Counter[str]

    async def _on_event(self, topic: str, payload: bytes) -> None:
        event = report.event_envelope(payload)
        if event is None:
            self._counters["malformed"] += 1
            await self.store.bump("malformed")
            log.warning("malformed event", extra={"topic": topic})
            return
        new = await self.store.record_event(event, now=self.clock())
        self._counters["received"] += 1
        self.confirmations.stored(f"{event['store_id']}/{event['gateway_id']}", event["seq"])
        if new:
            key = f"{event['store_id']}/{event['gateway_id']}"
            self._seqs.setdefault(key, set()).add(event["seq"])
            self._by_kind[event["kind"]] += 1
            self._replayed += 1 if event.get("replayed") else 0
        else:
            self._counters["duplicates"] += 1
        if self.on_event is not None:
            self.on_event(event, not new)

    async def _on_rpc(
        self,
        client: aiomqtt.Client,
        gateway: tuple[str, str],
        method: str,
        payload: bytes,
        props: Properties | None,
    ) -> None:
        store_id, gateway_id = gateway
        response_topic = getattr(props, "ResponseTopic", None)
        correlation = getattr(props, "CorrelationData", None)
        if not response_topic:
            log.info("rpc without a response topic", extra={"method": method[:64]})
            return
        base = f"{self.prefix}/{store_id}/{gateway_id}"
        if response_topic not in {f"{base}/{r}" for r in REPLY_TOPICS}:
            # Not run either: the asker could not read the answer, so it is not asking for it.
            self._counters["rpc_refused_response_topic"] += 1
            await self.store.bump("rpc_refused_response_topic")
            log.warning(
                "rpc refused: response topic outside the requester's reply topics",
                extra={
                    "method": method[:64],
                    "gateway": f"{store_id}/{gateway_id}",
                    "response_topic": str(response_topic)[:200],
                },
            )
            return
        args: Json = {}
        try:
            try:
                envelope = Envelope.model_validate_json(payload)
            except ValidationError:
                raise Refusal(RefusalCode.BAD_REQUEST, "not an RPC request envelope") from None
            args = envelope.args
            reply = await self.answer(method, args, store_id=store_id, gateway_id=gateway_id)
        except Refusal as refusal:
            reply = refusal.as_reply()
        except Exception:
            log.exception("rpc failed", extra={"method": method[:64]})
            reply = Refusal(RefusalCode.INTERNAL, "the cloud failed to answer").as_reply()
        outcome = "ok" if reply["ok"] else str(reply["error"]["code"])
        name = method if method in METHODS or method in self.methods else "(unknown)"
        self._counters[f"rpc:{name}:{outcome}"] += 1
        await self.store.bump(f"rpc:{name}:{outcome}")
        if self.on_rpc is not None:
            self.on_rpc(method, f"{store_id}/{gateway_id}", args, reply)
        out = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        if correlation is not None:
            out.CorrelationData = correlation
        body = json.dumps(reply, separators=(",", ":")).encode()
        await client.publish(response_topic, body, qos=1, properties=out)

    def report(self) -> Json:
        """What arrived: counts by kind, duplicates, seq gaps per gateway, RPC outcomes."""
        out = report.report(self._counters, self._seqs, self._by_kind, self._replayed, self.status)
        out["delivery"] = self.confirmations.report()
        out["devices"] = self.presence.device_states()
        return out
