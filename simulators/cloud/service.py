"""The simulated cloud member service: a real MQTT v5 peer of the gateways.

It consumes every gateway's events (deduplicated by id, persisted, seq gaps reported, each
gateway's stored watermark confirmed, its online state retained with a Will: see
:mod:`.delivery`), answers
the counter RPCs of docs/member-services.md on the request's v5 response topic with its
correlation data, publishes its public keys retained on ``{prefix}/cloud/keys``, and can send
commands to a gateway and await the result. All state lives in SQLite (:mod:`.store`), so a
restart on the same database changes nothing a gateway can observe.

The cloud may write almost anywhere, so it must not be a confused deputy: an RPC is answered
only when its response topic is one of the requesting gateway's own reply topics
(:data:`~simulators.cloud.rpc.REPLY_TOPICS` under the base of the topic the request arrived
on, which only that gateway's certificate may publish to); any other request is neither run
nor answered, only logged and counted (:mod:`.intake`). A command's result is accepted only
from the gateway it was sent to.

Messages are handled one at a time, in arrival order: the database is the single point of
truth and idempotency (same redemption id -> same answer) needs no locking.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Self

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.ids import utcnow
from gateway.uplink import LOW_LATENCY
from gateway.wire.tokens import KeySet, SigningKey
from simulators import tasks
from simulators.cloud.admin import CloudAdmin
from simulators.cloud.admin_channel import AdminChannel
from simulators.cloud.attribution import attribution
from simulators.cloud.campaigns import CampaignBook
from simulators.cloud.commands import GatewayCommands
from simulators.cloud.delivery import Confirmations, DeliveryPeer
from simulators.cloud.intake import CloudIntake, EventPrinter, RpcPrinter
from simulators.cloud.offers import OfferBook
from simulators.cloud.presence import Presence
from simulators.cloud.reports import store_report
from simulators.cloud.rpc import RpcMethod
from simulators.cloud.session import keep_connected
from simulators.cloud.store import CloudStore, Json
from simulators.cloud.wallet import WalletAnswers

if TYPE_CHECKING:
    from simulators.cloud.web import LandingServer

log = logging.getLogger(__name__)


class CloudService(CloudIntake, WalletAnswers, GatewayCommands, CloudAdmin, DeliveryPeer):
    """``async with CloudService(url, db_path) as cloud:`` — connected and answering."""

    def __init__(
        self,
        url: str,
        db_path: Path | str,
        *,
        prefix: str = "storegw/v1",
        seed: bool = True,
        protocol: str = "5",
        clock: Callable[[], datetime] = utcnow,
        on_event: EventPrinter | None = None,
        on_rpc: RpcPrinter | None = None,
        identifier: str | None = None,
        keepalive: int = 10,
        session_expiry_s: int = 0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        """``session_expiry_s`` > 0 keeps the broker session (subscriptions and queued QoS 1
        messages) across a restart of the service with the same ``identifier``, so events a
        gateway publishes meanwhile are not lost; 0 starts clean every time."""
        self.url = url
        self.prefix = prefix
        self.store = CloudStore(db_path)
        # Admin calls that are the store's own, under the names tests and the demo use.
        self.add_member = self.store.add_member
        self.add_appointment = self.store.add_appointment
        self.set_price = self.store.set_price
        self.member = self.store.member_row
        self.appointment = self.store.appointment
        self.seed = seed
        self.clock = clock
        self.on_event = on_event
        self.on_rpc = on_rpc
        self.tls_context = tls_context
        """For an ``mqtts://`` url: the cloud's client certificate (mTLS) and the CA to trust."""
        self.methods: dict[str, RpcMethod] = {}
        """RPCs beyond the member service's, by name (e.g. ``cert.renew`` from enrolment)."""
        self.offers = OfferBook(self.store)
        """Coupon offers members claim at kiosks (``coupon.claim``, the Member's ``offers``)."""
        # campaigns, and what members do online (bookings, stored value and packages sold);
        # the CLI's requests on {prefix}/cloud/admin/<method> (prices, offers, the report)
        self.campaigns, self.admin = CampaignBook(self.store), AdminChannel(self)
        self.methods["coupon.claim"] = self._claim
        self.methods["clock.now"] = self._clock_now
        self.methods |= self.wallet_methods()
        self.identifier = identifier or f"storegw-cloud-{uuid.uuid4().hex[:12]}"
        self.keepalive = keepalive
        self.session_expiry_s = session_expiry_s
        self._protocol = (
            aiomqtt.ProtocolVersion.V5 if protocol == "5" else aiomqtt.ProtocolVersion.V311
        )
        self.connected = asyncio.Event()
        self.reply_inbox = f"{prefix}/cloud/cmd-reply/+/+/{self.identifier}"
        """Command results: ``cloud/cmd-reply/<store>/<gw>/<instance>`` (a gateway may write
        only its own ``cloud/cmd-reply/<store>/<gw>/#``)."""
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: dict[str, tuple[str, asyncio.Future[Json]]] = {}
        """Command request id -> (the reply topic its gateway must answer on, the waiter)."""
        self._open = False
        # what was received, mirrored from the database for report()
        self._seqs: dict[str, set[int]] = {}
        self._by_kind: Counter[str] = Counter()
        self._replayed = 0
        self._counters: Counter[str] = Counter()
        self.presence = Presence()
        self.status = self.presence.status  # gateway -> its last status (report, tests)
        self.confirmations = Confirmations()
        self.state_topic = f"{prefix}/cloud/state"
        self.state_session = 0

    def landing(self, host: str = "127.0.0.1", port: int = 0) -> LandingServer:
        """The sticker landing page over this service's store: ``async with cloud.landing()``."""
        from simulators.cloud.web import LandingServer

        return LandingServer(self.store, host, port, clock=self.clock)

    @property
    def keys_topic(self) -> str:
        return f"{self.prefix}/cloud/keys"

    @property
    def keys(self) -> KeySet:
        """The public keys a gateway must trust (every key the cloud has signed with)."""
        return self.store.keys

    # --- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the database, create seed data on first start, load the report counters."""
        if self._open:
            return
        await self.store.__aenter__()
        self._open = True
        if self.seed and await self.store.seed(self.clock()):
            log.info("cloud seeded", extra={"db": str(self.store.path)})
        await self.offers.open(seed_at=self.clock() if self.seed else None)
        await self.campaigns.open()
        for rec in await self.store.events():
            self._seqs.setdefault(f"{rec.store_id}/{rec.gateway_id}", set()).add(rec.seq)
            self._by_kind[rec.kind] += 1
            self._replayed += rec.replayed
            self.confirmations.ledger(f"{rec.store_id}/{rec.gateway_id}").stored(rec.seq)
        self._counters.update(await self.store.counters())

    async def close(self) -> None:
        await self.admin.close()
        if self._open:
            self._open = False
            await self.store.__aexit__(None, None, None)

    async def __aenter__(self) -> Self:
        await self.open()
        try:
            self._task = await tasks.start(
                self._connection_loop(), self.connected, name="cloud-service"
            )
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.say_offline(self._client)  # a clean stop sends no Will
        task, self._task = self._task, None
        await tasks.stop(task)
        await self.close()

    async def run(self) -> None:
        """Serve until cancelled (the CLI's entry point)."""
        await self.open()
        try:
            await self._connection_loop()
        finally:
            await self.close()

    def _connect(self) -> aiomqtt.Client:
        scheme, _, rest = self.url.partition("://")
        host, _, port = rest.partition(":")
        persistent = self.session_expiry_s > 0
        v5 = self._protocol == aiomqtt.ProtocolVersion.V5
        connect = None
        will = self.new_state_session()
        if persistent and v5:
            connect = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            connect.SessionExpiryInterval = self.session_expiry_s
        return aiomqtt.Client(
            host,
            int(port or (8883 if scheme == "mqtts" else 1883)),
            tls_context=self.tls_context,
            protocol=self._protocol,
            keepalive=self.keepalive,
            identifier=self.identifier,
            clean_start=not persistent,
            clean_session=None if v5 else not persistent,
            properties=connect,
            will=will,
            socket_options=LOW_LATENCY,  # as a real consumer would: the RPC replies are small
        )

    async def _session(self, client: aiomqtt.Client) -> None:
        client.pending_calls_threshold = 1000
        for topic in (
            f"{self.prefix}/+/+/events/#",
            f"{self.prefix}/+/+/status",
            f"{self.prefix}/+/+/devices/+/availability",
            f"{self.prefix}/+/+/rpc/+",
            f"{self.prefix}/+/+/held",
            self.state_topic,
            self.reply_inbox,
            self.admin.topic,
        ):
            await client.subscribe(topic, qos=1)
        self._client = client
        await self.publish_keys()
        await self.announce(client)
        self.connected.set()
        log.info("cloud connected", extra={"broker": self.url})
        confirming = asyncio.create_task(self.confirm(client), name="cloud-confirm")
        try:
            async for message in client.messages:
                await self._dispatch(client, message)
        finally:
            confirming.cancel()
            await asyncio.gather(confirming, return_exceptions=True)

    def _lost(self) -> None:
        self._client = None
        self.connected.clear()
        for _, fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("cloud lost the broker"))

    async def _connection_loop(self) -> None:
        await keep_connected(self._connect, self._session, who="cloud", on_lost=self._lost)

    async def publish_keys(self) -> None:
        """Publish the JWKS retained, so every gateway gets it on subscribe, now and later."""
        client = self._client
        if client is None:
            return
        doc = json.dumps(self.keys.to_jwks(), separators=(",", ":"))
        await client.publish(self.keys_topic, doc.encode(), qos=1, retain=True)

    async def rotate_key(self, kid: str | None = None) -> str:
        """Sign with a new key from now on; publish both (old tokens keep verifying)."""
        key = SigningKey.generate(kid)
        await self.store.add_signing_key(key)
        await self.publish_keys()
        return key.kid

    # --- inbound --------------------------------------------------------------------------

    async def _dispatch(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        topic = str(message.topic)
        payload = message.payload if isinstance(message.payload, bytes | bytearray) else b""
        props = message.properties
        try:
            if topic == self.state_topic:
                await self.on_state(client, bytes(payload))
                return
            if topic.startswith(f"{self.prefix}/cloud/cmd-reply/"):
                self._resolve(topic, getattr(props, "CorrelationData", None), bytes(payload))
                return
            if self.admin.owns(topic):
                await self.admin.on_request(client, topic, bytes(payload), props)
                return
            parts = topic.removeprefix(self.prefix + "/").split("/")
            if len(parts) < 3:
                return
            store_id, gateway_id, section = parts[0], parts[1], parts[2]
            if section == "events":
                await self._on_event(topic, bytes(payload))
            elif section == "held" and len(parts) == 3:
                self.on_held(f"{store_id}/{gateway_id}", bytes(payload))
            elif section == "status" and len(parts) == 3:
                self.presence.on_status(f"{store_id}/{gateway_id}", bytes(payload))
            elif section == "devices" and len(parts) == 5 and parts[4] == "availability":
                self.presence.on_availability(f"{store_id}/{gateway_id}", parts[3], bytes(payload))
            elif section == "rpc" and len(parts) == 4:
                await self._on_rpc(client, (store_id, gateway_id), parts[3], bytes(payload), props)
        except aiomqtt.MqttError:
            raise
        except Exception:  # a bug on one message must not stop the service
            log.exception("cloud failed to handle a message", extra={"topic": topic})

    async def attribution(self) -> list[Json]:
        """Each visit with the claims before it and the offers redeemed that day there."""
        return await attribution(self.store)

    async def store_report(self, store_id: str, since: datetime, until: datetime) -> Json:
        """Head office's report of one store (:mod:`simulators.cloud.reports`)."""
        return await store_report(self.store, store_id, since, until)
