"""Keeps the broker session alive: connect, announce, pump events, answer commands, repeat.

Each session gets a number that grows across restarts. The retained status topic carries it
in both the birth ("online") and the Will ("offline"), so a consumer can ignore a late Will
that belongs to an older session than the newest birth it has seen.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping

from core.backoff import Backoff
from core.events import JsonObject
from core.ids import rfc3339
from gateway import __version__
from gateway.commands import CommandCode, Dispatcher, Undo, failed
from gateway.feature import InboundHandler
from gateway.metrics import Metrics
from gateway.mqtt_config import MqttSection
from gateway.outbox import Outbox
from gateway.pump import Gate, Pump
from gateway.rpc import RpcClient
from gateway.uplink import (
    Inbound,
    LastWill,
    PublishRefused,
    Uplink,
    UplinkCode,
    UplinkError,
)
from gateway.wire.topics import Topics

log = logging.getLogger(__name__)

UplinkFactory = Callable[[MqttSection, str, LastWill], Uplink]


def _json(doc: JsonObject) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


class Bridge:
    def __init__(
        self,
        cfg: MqttSection,
        topics: Topics,
        outbox: Outbox,
        dispatcher: Dispatcher,
        metrics: Metrics,
        *,
        client_id: str | None = None,
        uplink_factory: UplinkFactory | None = None,
    ) -> None:
        self._cfg = cfg
        self._topics = topics
        self._outbox = outbox
        self._dispatcher = dispatcher
        self._metrics = metrics
        self._client_id = (
            client_id or cfg.client_id or f"storegw-{topics.store_id}-{topics.gateway_id}"
        )
        self._factory = uplink_factory or (lambda c, cid, will: Uplink(c, client_id=cid, will=will))
        self.rpc = RpcClient(topics.rpc, topics.rpc_replies)
        self._watchers: list[tuple[Callable[[], None], Callable[[], None]]] = []
        self._handlers: dict[str, InboundHandler] = {}
        """Exact topics outside the command space (e.g. the cloud's keys) and their handlers;
        subscribed in every session, called from the one inbound loop with the payload."""
        self.backoff = Backoff(cfg.reconnect_min_s, cfg.reconnect_max_s)
        self.connected = asyncio.Event()
        self.session = 0
        self.sessions_started = 0
        self.last_error: str | None = None
        self.connected_since: float | None = None
        self._uplink: Uplink | None = None
        """The session's uplink while it is up (for :meth:`publish_retained`)."""
        self.gate: Gate | None = None
        """When events may go out and PUBACKed rows be deleted (gateway/delivery/); None:
        always, and on PUBACK."""

    def subscribe(self, topics: Mapping[str, InboundHandler]) -> Undo:
        """Handle these exact topics from the next session on; returns how to stop."""
        taken = sorted(set(topics) & set(self._handlers))
        if taken:
            raise ValueError(f"topics already handled: {taken}")
        self._handlers.update(topics)

        def undo() -> None:
            for topic, handler in topics.items():
                if self._handlers.get(topic) is handler:
                    del self._handlers[topic]

        return undo

    def watch(self, connected: Callable[[], None], disconnected: Callable[[], None]) -> Undo:
        """``connected`` once each session is up (RPC usable), ``disconnected`` once it is
        gone (RPC unavailable again); returns how to stop."""
        pair = (connected, disconnected)
        self._watchers.append(pair)
        return lambda: self._watchers.remove(pair) if pair in self._watchers else None

    def retune(self, cfg: MqttSection) -> None:
        """New settings read once per session (replay pacing): in effect from the next one."""
        self._cfg = cfg

    async def publish_retained(self, topic: str, payload: bytes) -> None:
        """Publish a retained state message (a device's availability) in the current
        session; UplinkError when there is none."""
        uplink = self._uplink
        if uplink is None:
            raise UplinkError(UplinkCode.NOT_CONNECTED, "not connected")
        await uplink.publish(topic, payload, retain=True)

    def _tell(self, up: bool) -> None:
        for connected, disconnected in list(self._watchers):
            try:
                (connected if up else disconnected)()
            except Exception:  # one feature's bug must not keep the others uninformed
                log.exception("connection watcher failed")

    def _status(self, state: str, reason: str | None = None) -> bytes:
        doc: JsonObject = {
            "state": state,
            "session": self.session,
            "ts": rfc3339(time.time()),
            "store_id": self._topics.store_id,
            "gateway_id": self._topics.gateway_id,
            "version": __version__,
        }
        if reason is not None:
            doc["reason"] = reason
        return _json(doc)

    async def run(self) -> None:
        """Reconnect forever; returns only when cancelled."""
        first = True
        while True:
            if not first:
                self._metrics.reconnects.inc()
            first = False
            try:
                await self._session()
            except UplinkError as exc:
                self._lost(str(exc))
            delay = self.backoff.next()
            log.debug(
                "reconnecting", extra={"in_s": round(delay, 3), "attempt": self.backoff.attempt}
            )
            await asyncio.sleep(delay)

    def _lost(self, error: str) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        self._metrics.connected.set(0)
        self.connected_since = None
        if was_connected or self.last_error is None:
            log.warning("broker unavailable: %s", error, extra={"broker": self._cfg.host})
        self.last_error = error

    async def _session(self) -> None:
        self.session = await self._outbox.next_session()
        will = LastWill(self._topics.status, self._status("offline", "connection lost"))
        uplink = self._factory(self._cfg, self._client_id, will)
        async with uplink:
            await uplink.subscribe(
                self._topics.commands, self._topics.rpc_replies, *sorted(self._handlers)
            )
            backlog_end = self._outbox.last_seq
            await uplink.publish(self._topics.status, self._status("online"), retain=True)
            self.backoff.reset()
            self.sessions_started += 1
            self.connected_since = time.time()
            self.connected.set()
            self._metrics.connected.set(1)
            log.info(
                "broker connected",
                extra={
                    "broker": self._cfg.host,
                    "session": self.session,
                    "backlog": backlog_end,
                    "recovered_from": self.last_error,
                },
            )
            self.last_error = None

            async def send_request(topic: str, payload: bytes, reply: str, corr: bytes) -> None:
                await uplink.publish(topic, payload, response_topic=reply, correlation_data=corr)

            self.rpc.attach(send_request)
            self._uplink = uplink
            self._tell(up=True)
            pump = Pump(
                self._outbox,
                self._topics,
                uplink.publish,
                window=self._cfg.publish_window,
                replay_share=self._cfg.replay_share,
                replay_max_per_s=self._cfg.replay_max_per_s,
                metrics=self._metrics,
                gate=self.gate,
            )
            try:
                await self._serve(uplink, pump, backlog_end)
            except asyncio.CancelledError:
                await self._say_goodbye(uplink)  # a shutdown, not a broken link
                raise
            finally:
                self.rpc.attach(None)
                self._uplink = None
                self._tell(up=False)

    async def _serve(self, uplink: Uplink, pump: Pump, backlog_end: int) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(pump.run(backlog_end), name="bridge-pump")
                tg.create_task(self._commands(uplink, tg), name="bridge-commands")
        except* UplinkError as group:
            raise group.exceptions[0] from None

    async def _say_goodbye(self, uplink: Uplink) -> None:
        try:
            async with asyncio.timeout(1.0):
                await uplink.publish(
                    self._topics.status, self._status("offline", "shutdown"), retain=True
                )
        except (TimeoutError, UplinkError):
            log.info("could not publish offline status on shutdown")

    async def _commands(self, uplink: Uplink, tg: asyncio.TaskGroup) -> None:
        async for msg in uplink.messages():
            handler = self._handlers.get(msg.topic)
            if msg.topic == self._topics.rpc_replies:
                handler = self._rpc_reply(msg.correlation_data)
            if handler is not None:
                try:
                    handler(msg.payload)
                except Exception:  # a handler bug must not end the session
                    log.exception("inbound handler failed", extra={"topic": msg.topic[:200]})
                continue
            name = self._topics.command_name(msg.topic)
            if name is None:
                continue
            tg.create_task(self._answer(uplink, name, msg), name="bridge-answer")

    def _rpc_reply(self, correlation: bytes | None) -> Callable[[bytes], None]:
        return lambda payload: self.rpc.resolve(correlation, payload)

    async def _answer(self, uplink: Uplink, name: str, msg: Inbound) -> None:
        """Run one command and publish its result; nothing here may end the session.

        A response topic outside the gateway's reply space is not obeyed: the command is not
        run and the refusal goes to the default result topic (always inside its own
        subtree). A publish that fails is logged and counted; if the link itself broke, the
        message loop notices and ends the session.
        """
        topic = self._topics.command_result(name)
        if msg.response_topic and not self._topics.may_answer_to(msg.response_topic):
            result = failed(
                CommandCode.BAD_RESPONSE_TOPIC,
                "the response topic is outside this gateway's reply space",
                None,
                name,
                details={
                    "allowed": [
                        f"{self._topics.command_replies}/#",
                        f"{self._topics.command_results}/#",
                    ]
                },
            )
            self._answer_failed("bad_response_topic", name, msg.response_topic)
        else:
            try:
                result = await self._dispatcher.dispatch(name, msg.payload)
            except Exception:  # the dispatcher answers every failure; this is a bug in it
                log.exception("command dispatch failed", extra={"command": name[:64]})
                result = failed(
                    CommandCode.INTERNAL, "the command failed inside the gateway", None, name
                )
            topic = msg.response_topic or topic
        error = result.get("error")
        self._metrics.command_handled(name, bool(result["ok"]), self._dispatcher.knows)
        if not result["ok"]:
            log.info("command refused", extra={"command": name[:64], "error": error})
        try:
            await uplink.publish(topic, _json(result), correlation_data=msg.correlation_data)
        except PublishRefused as exc:
            self._answer_failed("publish_refused", name, topic, exc.reason)
        except Exception as exc:  # a result too big for the broker, a broken link, ...
            self._answer_failed("publish_failed", name, topic, f"{type(exc).__name__}: {exc}")

    def _answer_failed(self, reason: str, name: str, topic: str, detail: str = "") -> None:
        self._metrics.answers_failed.labels(reason=reason).inc()
        log.warning(
            "command answer not delivered",
            extra={"reason": reason, "command": name[:64], "topic": topic[:200], "detail": detail},
        )
