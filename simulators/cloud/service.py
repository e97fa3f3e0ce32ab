"""The simulated cloud member service: a real MQTT v5 peer of the gateways.

It consumes every gateway's events (deduplicated by id, persisted, seq gaps reported), answers
the counter RPCs of docs/member-services.md on the request's v5 response topic with its
correlation data, publishes its public keys retained on ``{prefix}/cloud/keys``, and can send
commands to a gateway and await the result. All state lives in SQLite (:mod:`.store`), so a
restart on the same database changes nothing a gateway can observe.

The cloud may write almost anywhere, so it must not be a confused deputy: an RPC is answered
only when its response topic is one of the requesting gateway's own reply topics
(:data:`REPLY_TOPICS` under the base of the topic the request arrived on, which only that
gateway's certificate may publish to); any other request is neither run nor answered, only
logged and counted. A command's result is accepted only from the gateway it was sent to.

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
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import aiomqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from core import safejson
from gateway.wire.tokens import Coupon, KeySet, SigningKey
from simulators import tasks
from simulators.cloud.offers import ClaimArgs, OfferBook
from simulators.cloud.store import CloudStore, Json, Refusal, iso, normalise_uid

log = logging.getLogger(__name__)

EventPrinter = Callable[[Json, bool], None]
RpcPrinter = Callable[[str, str, Json, Json], None]
"""(method, "store/gateway", args, reply)"""
RpcMethod = Callable[[Json, str, str], Awaitable[Json]]
"""An extra RPC: (args, store_id, gateway_id) -> reply; raises Refusal to say no."""

ID = r"^[A-Za-z0-9_.:-]{1,64}$"
UID = r"^[0-9A-Fa-f: -]{2,64}$"
OFFLINE_AT_SKEW = timedelta(minutes=5)
"""An ``offline_at`` later than now by more than this is refused (a clock gone wrong)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --- RPC requests ---------------------------------------------------------------------------


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=128)
    ts: str = Field(min_length=1, max_length=64)
    args: dict[str, Any]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    till: str | None = Field(default=None, pattern=ID)
    """Optional on every method: which counter position asks (logged, recorded)."""


class IdentifyArgs(_Args):
    by: Literal["qr", "card", "nfc", "member_id"]
    member_id: str | None = Field(default=None, pattern=ID)
    uid: str | None = Field(default=None, pattern=UID)

    @model_validator(mode="after")
    def _one_key(self) -> IdentifyArgs:
        wanted = "uid" if self.by in ("card", "nfc") else "member_id"
        given = {k for k in ("member_id", "uid") if getattr(self, k) is not None}
        if given != {wanted}:
            raise ValueError(f"by={self.by!r} needs exactly {wanted!r}")
        return self


class RedeemArgs(_Args):
    coupon: str = Field(min_length=1, max_length=4096)
    redemption_id: str = Field(pattern=ID)
    member_id: str | None = Field(default=None, pattern=ID)
    offline_at: AwareDatetime | None = None


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: str = Field(min_length=1, max_length=64)
    qty: Decimal = Field(gt=0, allow_inf_nan=False, max_digits=12)
    price: Decimal = Field(ge=0, allow_inf_nan=False, max_digits=12)


class AccrueArgs(_Args):
    accrual_id: str = Field(pattern=ID)
    member_id: str = Field(pattern=ID)
    amount: Decimal = Field(ge=0, allow_inf_nan=False, max_digits=12)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    items: list[Item] = Field(default_factory=list, max_length=1000)
    receipt_id: str | None = Field(default=None, pattern=ID)


class CheckinArgs(_Args):
    checkin_id: str = Field(pattern=ID)
    appointment_id: str = Field(pattern=ID)
    member_id: str | None = Field(default=None, pattern=ID)


METHODS = ("member.identify", "coupon.redeem", "points.accrue", "appointment.checkin")
REPLY_TOPICS = ("rpc-reply", "doctor/reply")
"""Where a gateway's RPC replies may go, below its base: the daemon's and the doctor's inboxes
(docs/mqtt.md); deploy/mosquitto/storegw.acl grants the cloud write on exactly these."""


def _bad_args(exc: ValidationError) -> Refusal:
    details = [
        {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]
    return Refusal("bad_args", "invalid arguments", {"errors": details})


# --- the service ----------------------------------------------------------------------------


class CloudService:
    """``async with CloudService(url, db_path) as cloud:`` — connected and answering."""

    def __init__(
        self,
        url: str,
        db_path: Path | str,
        *,
        prefix: str = "storegw/v1",
        seed: bool = True,
        protocol: str = "5",
        clock: Callable[[], datetime] = _utcnow,
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
        self.methods["coupon.claim"] = self._claim
        self.methods["clock.now"] = self._clock_now
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
        self.status: dict[str, Json] = {}

    @property
    def keys_topic(self) -> str:
        return f"{self.prefix}/cloud/keys"

    def reply_topic(self, store: str, gw: str) -> str:
        """The response topic of a command to one gateway."""
        return f"{self.prefix}/cloud/cmd-reply/{store}/{gw}/{self.identifier}"

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
        for rec in await self.store.events():
            self._seqs.setdefault(f"{rec.store_id}/{rec.gateway_id}", set()).add(rec.seq)
            self._by_kind[rec.kind] += 1
            self._replayed += rec.replayed
        self._counters.update(await self.store.counters())

    async def close(self) -> None:
        if self._open:
            self._open = False
            await self.store.__aexit__(None, None, None)

    async def __aenter__(self) -> Self:
        await self.open()
        self._task = asyncio.create_task(self._connection_loop(), name="cloud-service")
        try:
            async with asyncio.timeout(10):
                await self.connected.wait()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            await tasks.stop(task)
        await self.close()

    async def run(self) -> None:
        """Serve until cancelled (the CLI's entry point)."""
        await self.open()
        try:
            await self._connection_loop()
        finally:
            await self.close()

    async def _connection_loop(self) -> None:
        scheme, _, rest = self.url.partition("://")
        host, _, port = rest.partition(":")
        persistent = self.session_expiry_s > 0
        connect = None
        if persistent and self._protocol == aiomqtt.ProtocolVersion.V5:
            connect = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            connect.SessionExpiryInterval = self.session_expiry_s
        while True:
            try:
                async with aiomqtt.Client(
                    host,
                    int(port or (8883 if scheme == "mqtts" else 1883)),
                    tls_context=self.tls_context,
                    protocol=self._protocol,
                    keepalive=self.keepalive,
                    identifier=self.identifier,
                    clean_start=not persistent,
                    clean_session=None
                    if self._protocol == aiomqtt.ProtocolVersion.V5
                    else not persistent,
                    properties=connect,
                ) as client:
                    client.pending_calls_threshold = 1000
                    for topic in (
                        f"{self.prefix}/+/+/events/#",
                        f"{self.prefix}/+/+/status",
                        f"{self.prefix}/+/+/rpc/+",
                        self.reply_inbox,
                    ):
                        await client.subscribe(topic, qos=1)
                    self._client = client
                    await self.publish_keys()
                    self.connected.set()
                    log.info("cloud connected", extra={"broker": self.url})
                    async for message in client.messages:
                        await self._dispatch(client, message)
            except aiomqtt.MqttError as exc:
                log.warning("cloud lost the broker: %s", exc)
            finally:
                self._client = None
                self.connected.clear()
                for _, fut in self._pending.values():
                    if not fut.done():
                        fut.set_exception(ConnectionError("cloud lost the broker"))
            await asyncio.sleep(0.2)

    async def publish_keys(self) -> None:
        """Publish the JWKS retained, so every gateway gets it on subscribe, now and later."""
        client = self._client
        if client is None:
            return
        doc = json.dumps(self.keys.to_jwks(), separators=(",", ":"))
        await client.publish(self.keys_topic, doc.encode(), qos=1, retain=True)

    # --- inbound --------------------------------------------------------------------------

    async def _dispatch(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        topic = str(message.topic)
        payload = message.payload if isinstance(message.payload, bytes | bytearray) else b""
        props = message.properties
        try:
            if topic.startswith(f"{self.prefix}/cloud/cmd-reply/"):
                self._resolve(topic, getattr(props, "CorrelationData", None), bytes(payload))
                return
            parts = topic.removeprefix(self.prefix + "/").split("/")
            if len(parts) < 3:
                return
            store_id, gateway_id, section = parts[0], parts[1], parts[2]
            if section == "events":
                await self._on_event(topic, bytes(payload))
            elif section == "status" and len(parts) == 3:
                self._on_status(f"{store_id}/{gateway_id}", bytes(payload))
            elif section == "rpc" and len(parts) == 4:
                await self._on_rpc(client, (store_id, gateway_id), parts[3], bytes(payload), props)
        except aiomqtt.MqttError:
            raise
        except Exception:  # a bug on one message must not stop the service
            log.exception("cloud failed to handle a message", extra={"topic": topic})

    async def _on_event(self, topic: str, payload: bytes) -> None:
        event = _envelope(payload)
        if event is None:
            self._counters["malformed"] += 1
            await self.store.bump("malformed")
            log.warning("malformed event", extra={"topic": topic})
            return
        new = await self.store.record_event(event, now=self.clock())
        self._counters["received"] += 1
        if new:
            key = f"{event['store_id']}/{event['gateway_id']}"
            self._seqs.setdefault(key, set()).add(event["seq"])
            self._by_kind[event["kind"]] += 1
            self._replayed += 1 if event.get("replayed") else 0
        else:
            self._counters["duplicates"] += 1
        if self.on_event is not None:
            self.on_event(event, not new)

    def _on_status(self, key: str, payload: bytes) -> None:
        try:
            doc = safejson.loads(payload)
        except safejson.BadJson:
            return
        if not isinstance(doc, dict):
            return
        seen = self.status.get(key)
        late_will = (
            seen is not None
            and doc.get("state") == "offline"
            and isinstance(doc.get("session"), int)
            and isinstance(seen.get("session"), int)
            and doc["session"] < seen["session"]
        )
        if not late_will:
            self.status[key] = doc

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
                raise Refusal("bad_request", "not an RPC request envelope") from None
            args = envelope.args
            reply = await self.answer(method, args, store_id=store_id, gateway_id=gateway_id)
        except Refusal as refusal:
            reply = refusal.as_reply()
        except Exception:
            log.exception("rpc failed", extra={"method": method[:64]})
            reply = Refusal("internal", "the cloud failed to answer").as_reply()
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

    async def answer(self, method: str, args: Json, *, store_id: str, gateway_id: str) -> Json:
        """The reply to one RPC (``{"ok": ...}``); raises Refusal for a refusal."""
        now = self.clock()
        try:
            if method == "member.identify":
                ident = IdentifyArgs.model_validate(args)
                return {"ok": True, "data": await self._identify(ident, store_id, now)}
            if method == "coupon.redeem":
                redeem = RedeemArgs.model_validate(args)
                if redeem.offline_at is not None and redeem.offline_at > now + OFFLINE_AT_SKEW:
                    raise Refusal("bad_args", "offline_at is in the future")
                return await self.store.redeem(
                    token=redeem.coupon,
                    redemption_id=redeem.redemption_id,
                    store_id=store_id,
                    gateway_id=gateway_id,
                    till=redeem.till,
                    member_id=redeem.member_id,
                    offline_at=redeem.offline_at,
                    now=now,
                )
            if method == "points.accrue":
                accrue = AccrueArgs.model_validate(args)
                return await self.store.accrue(
                    accrual_id=accrue.accrual_id,
                    member_id=accrue.member_id,
                    amount=accrue.amount,
                    currency=accrue.currency,
                    items=[i.model_dump(mode="json") for i in accrue.items],
                    receipt_id=accrue.receipt_id,
                    store_id=store_id,
                    gateway_id=gateway_id,
                    now=now,
                )
            if method == "appointment.checkin":
                checkin = CheckinArgs.model_validate(args)
                return await self.store.checkin(
                    checkin_id=checkin.checkin_id,
                    appointment_id=checkin.appointment_id,
                    member_id=checkin.member_id,
                    store_id=store_id,
                    now=now,
                )
        except ValidationError as exc:
            raise _bad_args(exc) from None
        extra = self.methods.get(method)
        if extra is not None:
            return await extra(args, store_id, gateway_id)
        raise Refusal("unknown_method", "the cloud has no such method")

    async def _identify(self, args: IdentifyArgs, store_id: str, now: datetime) -> Json:
        if args.uid is not None:
            member_id = await self.store.member_by_uid(args.uid)
            if member_id is None:
                raise Refusal("unknown_card", "no member has this card")
        else:
            assert args.member_id is not None
            member_id = args.member_id
        member = await self.store.member_profile(member_id, store_id=store_id, now=now)
        member["offers"] = await self.offers.available(member, store_id=store_id, now=now)
        return {"member": member}

    async def _clock_now(self, args: Json, store_id: str, gateway_id: str) -> Json:
        """The cloud's time, so ``provision doctor`` can measure the box's clock skew."""
        if set(args) - {"till"}:
            raise Refusal("bad_args", "clock.now takes no arguments")
        return {"ok": True, "data": {"now": iso_ms(self.clock())}}

    async def _claim(self, args: Json, store_id: str, gateway_id: str) -> Json:
        try:
            claim = ClaimArgs.model_validate(args)
        except ValidationError as exc:
            raise _bad_args(exc) from None
        return await self.offers.claim(
            claim, store_id=store_id, gateway_id=gateway_id, now=self.clock()
        )

    # --- commands to gateways ------------------------------------------------------------

    async def send_command(
        self,
        store: str,
        gw: str,
        name: str,
        args: Json | None = None,
        *,
        timeout: float = 5.0,
    ) -> Json:
        """Send ``{base}/cmd/{name}`` with a response topic; return the gateway's result.

        Raises ConnectionError when the cloud is not connected, TimeoutError without a reply.
        """
        client = self._client
        if client is None:
            raise ConnectionError("the cloud is not connected to the broker")
        request_id = str(uuid.uuid4())
        fut: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        reply_topic = self.reply_topic(store, gw)
        self._pending[request_id] = (reply_topic, fut)
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ResponseTopic = reply_topic
        props.CorrelationData = request_id.encode()
        body = json.dumps({"id": request_id, "args": args or {}}, separators=(",", ":"))
        self._counters["commands_sent"] += 1
        try:
            async with asyncio.timeout(timeout):
                await client.publish(
                    f"{self.prefix}/{store}/{gw}/cmd/{name}",
                    body.encode(),
                    qos=1,
                    properties=props,
                )
                return await fut
        except TimeoutError:
            self._counters["commands_timed_out"] += 1
            raise TimeoutError(f"{store}/{gw} did not answer {name} within {timeout}s") from None
        finally:
            self._pending.pop(request_id, None)

    def _resolve(self, topic: str, correlation: bytes | None, payload: bytes) -> None:
        key = correlation.decode("utf-8", "replace") if correlation else ""
        expected, fut = self._pending.get(key, ("", None))
        if fut is None or fut.done():
            return
        if topic != expected:  # from another gateway than the one asked (a broker without ACL)
            log.warning("command result on the wrong topic", extra={"topic": topic[:200]})
            return
        try:
            doc = safejson.loads(payload)
        except safejson.BadJson:
            doc = None
        if isinstance(doc, dict):
            self._counters["commands_answered"] += 1
            fut.set_result(doc)
        else:
            fut.set_exception(ValueError("malformed command result"))

    async def push_price(
        self, store: str, gw: str, *, device: str, label: str, sku: str, timeout: float = 10.0
    ) -> Json:
        """Show a product's current price (and promotion) on a shelf label."""
        product = await self.store.product(sku, store_id=store, now=self.clock())
        if product is None:
            raise KeyError(sku)
        return await self.send_command(
            store,
            gw,
            "label.show",
            {"device": device, "label": label, "product": product},
            timeout=timeout,
        )

    # --- shelf prices (docs/pricing.md) ---------------------------------------------------

    async def price_list(self) -> list[Json]:
        """The catalogue's regular prices, as ``prices.update`` items."""
        return await self.store.price_items()

    async def push_price_list(
        self,
        store: str,
        gw: str,
        items: list[Json] | None = None,
        *,
        force: bool = False,
        wait_s: float = 0.0,
        timeout: float | None = None,
    ) -> Json:
        """Send a price list (default: the whole catalogue) with ``prices.update``; the result
        names the sync, and with ``wait_s`` which labels were updated and which failed."""
        args: Json = {"items": items if items is not None else await self.price_list()}
        if force:
            args["force"] = True
        if wait_s:
            args["wait_s"] = wait_s
        return await self.send_command(
            store, gw, "prices.update", args, timeout=timeout or wait_s + 10.0
        )

    async def push_flash_sale(
        self,
        store: str,
        gw: str,
        *,
        start: datetime,
        end: datetime,
        promo_text: str,
        skus: list[str] | tuple[str, ...] = (),
        items: list[Json] | None = None,
        percent_off: Decimal | None = None,
        sale_id: str | None = None,
        wait_s: float = 0.0,
        timeout: float | None = None,
    ) -> Json:
        """Send a flash sale (``prices.flash_sale``): ``items`` with their own promo prices
        (``{"sku", "promo_price"}``) and/or ``skus`` at ``percent_off`` (or text only)."""
        args: Json = {
            "start": iso_ms(start),
            "end": iso_ms(end),
            "promo_text": promo_text,
        }
        if sale_id is not None:
            args["sale_id"] = sale_id
        if skus:
            args["skus"] = list(skus)
        if items:
            args["items"] = items
        if percent_off is not None:
            args["percent_off"] = str(percent_off)
        if wait_s:
            args["wait_s"] = wait_s
        return await self.send_command(
            store, gw, "prices.flash_sale", args, timeout=timeout or wait_s + 10.0
        )

    async def cancel_flash_sale(self, store: str, gw: str, sale_id: str) -> Json:
        return await self.send_command(
            store, gw, "prices.flash_sale.cancel", {"sale_id": sale_id}, timeout=10.0
        )

    async def push_promotions(self, store: str, gw: str) -> list[Json]:
        """Send every promotion valid in ``store`` that has not ended, each as a flash sale
        named by its promotion id (so sending them again replaces rather than duplicates)."""
        results: list[Json] = []
        for promo in await self.store.promotions_for(store, now=self.clock()):
            results.append(
                await self.push_flash_sale(
                    store,
                    gw,
                    sale_id=promo["promotion_id"],
                    start=datetime.fromisoformat(promo["starts_at"]),
                    end=datetime.fromisoformat(promo["ends_at"]),
                    promo_text=promo["title"],
                    items=[{"sku": promo["sku"], "promo_price": promo["promo_price"]}],
                )
            )
        return results

    async def bind_label(
        self,
        store: str,
        gw: str,
        *,
        label: str,
        sku: str,
        device: str | None = None,
        wait_s: float = 0.0,
    ) -> Json:
        """Bind a shelf label to a product (``labels.bind``); it shows the product at once
        when the gateway knows its price."""
        args: Json = {"label": label, "sku": sku}
        if device is not None:
            args["device"] = device
        if wait_s:
            args["wait_s"] = wait_s
        return await self.send_command(store, gw, "labels.bind", args, timeout=wait_s + 10.0)

    # --- admin (tests, demo) --------------------------------------------------------------

    async def add_member(
        self,
        member_id: str,
        name: str,
        *,
        tier: str = "basic",
        points: int = 0,
        balance: Decimal = Decimal("0.00"),
        currency: str = "EUR",
        tags: tuple[str, ...] = (),
    ) -> None:
        await self.store.add_member(
            member_id, name, tier=tier, points=points, balance=balance, currency=currency, tags=tags
        )

    async def add_card(self, uid: str, member_id: str, *, kind: str = "card") -> None:
        await self.store.add_card(normalise_uid(uid), member_id, kind=kind)

    async def add_coupon(
        self,
        coupon_id: str,
        value: Decimal,
        *,
        member_id: str | None = None,
        currency: str = "EUR",
        stores: tuple[str, ...] = ("*",),
        expires: datetime | None = None,
        not_before: datetime | None = None,
        title: str = "",
    ) -> str:
        """Issue a coupon; returns its scannable token (``SGC1:...``)."""
        coupon = Coupon(
            coupon_id=coupon_id,
            value=value,
            currency=currency,
            expires=expires or self.clock() + timedelta(days=30),
            not_before=not_before,
            stores=stores,
            member_id=member_id,
            title=title,
        )
        return await self.store.add_coupon(coupon)

    async def add_appointment(
        self,
        appointment_id: str,
        member_id: str,
        store_id: str,
        starts_at: datetime,
        service: str = "consultation",
    ) -> None:
        await self.store.add_appointment(appointment_id, member_id, store_id, starts_at, service)

    async def add_offer(
        self,
        offer_id: str,
        title: str,
        value: Decimal,
        *,
        valid_for: timedelta = timedelta(days=14),
        starts_at: datetime | None = None,
        ends_at: datetime | None = None,
        stores: tuple[str, ...] = ("*",),
        tiers: tuple[str, ...] = ("*",),
        currency: str = "EUR",
    ) -> None:
        """Offer a coupon members can claim (at a kiosk) from ``starts_at`` to ``ends_at``."""
        now = self.clock()
        await self.offers.add_offer(
            offer_id,
            title,
            value,
            valid_for=valid_for,
            starts_at=starts_at or now - timedelta(minutes=1),
            ends_at=ends_at or now + timedelta(days=30),
            stores=stores,
            tiers=tiers,
            currency=currency,
        )

    async def kiosk_message(
        self,
        store: str,
        gw: str,
        kiosk: str,
        *,
        zh: str,
        en: str,
        ttl_s: float | None = None,
        message_id: str | None = None,
        timeout: float = 5.0,
    ) -> Json:
        """Show a text on a kiosk's page (command ``kiosk.message``); the result says how
        many open pages got it."""
        args: Json = {"kiosk": kiosk, "text": {"zh": zh, "en": en}}
        if ttl_s is not None:
            args["ttl_s"] = ttl_s
        if message_id is not None:
            args["message_id"] = message_id
        return await self.send_command(store, gw, "kiosk.message", args, timeout=timeout)

    async def coupon_token(self, coupon_id: str) -> str:
        state = await self.store.coupon_state(coupon_id)
        if state is None:
            raise KeyError(coupon_id)
        return str(state["token"])

    async def coupon(self, coupon_id: str) -> Json | None:
        """The coupon's state: used_at, used_store, redemption_id, ... (None if unknown)."""
        return await self.store.coupon_state(coupon_id)

    async def mark_coupon_used(
        self, coupon_id: str, *, store_id: str = "S999", at: datetime | None = None
    ) -> None:
        """Pretend another store redeemed the coupon (stages an ``already_used`` conflict)."""
        await self.store.mark_coupon_used(coupon_id, store_id=store_id, at=at or self.clock())

    async def member(self, member_id: str) -> Json | None:
        return await self.store.member_row(member_id)

    async def member_points(self, member_id: str) -> int:
        member = await self.store.member_row(member_id)
        if member is None:
            raise KeyError(member_id)
        return int(member["points"])

    async def appointment(self, appointment_id: str) -> Json:
        return await self.store.appointment(appointment_id)

    async def set_price(
        self,
        sku: str,
        name: str,
        price: Decimal,
        *,
        currency: str = "EUR",
        member_price: Decimal | None = None,
    ) -> None:
        await self.store.set_price(sku, name, price, currency=currency, member_price=member_price)

    async def issue_credential(
        self, member_id: str, phone_public: Ed25519PublicKey, *, valid_for: timedelta | None = None
    ) -> str:
        """A member credential for a phone (JWT), valid 30 days unless told otherwise."""
        now = self.clock()
        return await self.store.record_credential(
            member_id, phone_public, now=now, expires=now + (valid_for or timedelta(days=30))
        )

    async def rotate_key(self, kid: str | None = None) -> str:
        """Sign with a new key from now on; publish both (old tokens keep verifying)."""
        key = SigningKey.generate(kid)
        await self.store.add_signing_key(key)
        await self.publish_keys()
        return key.kid

    # --- report ---------------------------------------------------------------------------

    def report(self) -> Json:
        """What arrived: counts by kind, duplicates, seq gaps per gateway, RPC outcomes."""
        c = self._counters
        unique = sum(len(s) for s in self._seqs.values())
        rpc: dict[str, dict[str, int]] = {}
        for name, count in sorted(c.items()):
            if name.startswith("rpc:"):
                _, method, outcome = name.split(":", 2)
                rpc.setdefault(method, {})[outcome] = count
        return {
            "received": c["received"],
            "unique": unique,
            "duplicates": c["duplicates"],
            "replayed": self._replayed,
            "malformed": c["malformed"],
            "by_kind": dict(sorted(self._by_kind.items())),
            "gaps": {gw: _gaps(seqs) for gw, seqs in sorted(self._seqs.items())},
            "last_seq": {gw: max(seqs) for gw, seqs in sorted(self._seqs.items()) if seqs},
            "status": {
                gw: {k: doc.get(k) for k in ("state", "session", "reason") if k in doc}
                for gw, doc in sorted(self.status.items())
            },
            "rpc": rpc,
            "commands": {
                "sent": c["commands_sent"],
                "answered": c["commands_answered"],
                "timed_out": c["commands_timed_out"],
            },
        }


def iso_ms(value: datetime) -> str:
    """RFC 3339 UTC with milliseconds: sale windows may be shorter than a second apart."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _envelope(payload: bytes) -> Json | None:
    """The event if its envelope has what dedup and gap tracking need, else None."""
    try:
        event = safejson.loads(payload)
    except safejson.BadJson:
        return None
    if not isinstance(event, dict):
        return None
    if not all(isinstance(event.get(k), str) for k in ("id", "store_id", "gateway_id", "kind")):
        return None
    seq = event.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        return None
    return event


def _gaps(seqs: set[int]) -> list[int]:
    """Seqs missing between the first and the last seen (what the cloud has not got yet)."""
    if not seqs:
        return []
    return [s for s in range(min(seqs), max(seqs) + 1) if s not in seqs]


__all__ = [
    "METHODS",
    "AccrueArgs",
    "CheckinArgs",
    "CloudService",
    "IdentifyArgs",
    "RedeemArgs",
    "iso",
]
