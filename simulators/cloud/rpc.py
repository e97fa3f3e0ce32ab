"""The member service's RPCs (docs/member-services.md): the request models and the answers.

Every method validates its arguments with a model here and answers from the store; a refusal
is a :class:`~simulators.cloud.store.Refusal`, which the session turns into the error reply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.ids import rfc3339
from gateway.wire.tokens import Basket
from simulators.cloud.offers import ClaimArgs, OfferBook
from simulators.cloud.store import KEY, CloudStore, Json, Refusal, RefusalCode

RpcMethod = Callable[[Json, str, str], Awaitable[Json]]
"""An extra RPC: (args, store_id, gateway_id) -> reply; raises Refusal to say no."""

UID = r"^[0-9A-Fa-f: -]{2,64}$"
OFFLINE_AT_SKEW = timedelta(minutes=5)
"""An ``offline_at`` later than now by more than this is refused (a clock gone wrong)."""


# --- RPC requests ---------------------------------------------------------------------------


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=128)
    ts: str = Field(min_length=1, max_length=64)
    args: dict[str, Any]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    till: str | None = Field(default=None, pattern=KEY)
    """Optional on every method: which counter position asks (logged, recorded)."""


class IdentifyArgs(_Args):
    by: Literal["qr", "card", "nfc", "member_id"]
    member_id: str | None = Field(default=None, pattern=KEY)
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
    redemption_id: str = Field(pattern=KEY)
    member_id: str | None = Field(default=None, pattern=KEY)
    offline_at: AwareDatetime | None = None
    basket: Basket | None = None
    """What the till sells: a coupon's conditions are judged against it (the gateway's code)."""


class PickupArgs(_Args):
    code: str = Field(min_length=1, max_length=4096)
    pickup_id: str = Field(pattern=KEY)
    member_id: str | None = Field(default=None, pattern=KEY)
    offline_at: AwareDatetime | None = None


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: str = Field(min_length=1, max_length=64)
    qty: Decimal = Field(gt=0, allow_inf_nan=False, max_digits=12)
    price: Decimal = Field(ge=0, allow_inf_nan=False, max_digits=12)


class AccrueArgs(_Args):
    accrual_id: str = Field(pattern=KEY)
    member_id: str = Field(pattern=KEY)
    amount: Decimal = Field(ge=0, allow_inf_nan=False, max_digits=12)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    items: list[Item] = Field(default_factory=list, max_length=1000)
    receipt_id: str | None = Field(default=None, pattern=KEY)


class CheckinArgs(_Args):
    checkin_id: str = Field(pattern=KEY)
    appointment_id: str = Field(pattern=KEY)
    member_id: str | None = Field(default=None, pattern=KEY)
    offline_at: AwareDatetime | None = None
    """Set when the gateway reconciles a check-in it accepted offline."""
    campaign_id: str | None = Field(default=None, pattern=KEY)
    """The campaign the gateway's cached appointment names (its event carries it); the cloud
    attributes by its own booking record, this is only what the gateway knew."""


METHODS = (
    "member.identify",
    "coupon.redeem",
    "order.pickup",
    "points.accrue",
    "appointment.checkin",
)
REPLY_TOPICS = ("rpc-reply", "doctor/reply")
"""Where a gateway's RPC replies may go, below its base: the daemon's and the doctor's inboxes
(docs/mqtt.md); deploy/mosquitto/storegw.acl grants the cloud write on exactly these."""


def bad_args(exc: ValidationError) -> Refusal:
    details = [
        {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]
    return Refusal(RefusalCode.BAD_ARGS, "invalid arguments", {"errors": details})


def _check_offline_at(offline_at: datetime | None, now: datetime) -> None:
    if offline_at is not None and offline_at > now + OFFLINE_AT_SKEW:
        raise Refusal(RefusalCode.BAD_ARGS, "offline_at is in the future")


class RpcAnswers:
    """The answers to the RPCs, mixed into :class:`~simulators.cloud.service.CloudService`."""

    store: CloudStore
    offers: OfferBook
    clock: Callable[[], datetime]
    methods: dict[str, RpcMethod]

    async def answer(self, method: str, args: Json, *, store_id: str, gateway_id: str) -> Json:
        """The reply to one RPC (``{"ok": ...}``); raises Refusal for a refusal."""
        now = self.clock()
        member_id = args.get("member_id")
        if isinstance(member_id, str) and member_id.startswith("P-"):
            # a member the gateway made up offline, joined since: the ops land on them
            args = {**args, "member_id": await self.store.resolve_member(member_id)}
        try:
            if method == "member.identify":
                ident = IdentifyArgs.model_validate(args)
                return {"ok": True, "data": await self._identify(ident, store_id, now)}
            if method == "coupon.redeem":
                redeem = RedeemArgs.model_validate(args)
                _check_offline_at(redeem.offline_at, now)
                return await self.store.redeem(
                    token=redeem.coupon,
                    redemption_id=redeem.redemption_id,
                    store_id=store_id,
                    gateway_id=gateway_id,
                    till=redeem.till,
                    member_id=redeem.member_id,
                    offline_at=redeem.offline_at,
                    now=now,
                    basket=redeem.basket,
                )
            if method == "order.pickup":
                pickup = PickupArgs.model_validate(args)
                _check_offline_at(pickup.offline_at, now)
                return await self.store.pickup(
                    code=pickup.code,
                    pickup_id=pickup.pickup_id,
                    store_id=store_id,
                    gateway_id=gateway_id,
                    till=pickup.till,
                    member_id=pickup.member_id,
                    offline_at=pickup.offline_at,
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
                    offline_at=checkin.offline_at,
                )
        except ValidationError as exc:
            raise bad_args(exc) from None
        extra = self.methods.get(method)
        if extra is not None:
            return await extra(args, store_id, gateway_id)
        raise Refusal(RefusalCode.UNKNOWN_METHOD, "the cloud has no such method")

    async def _identify(self, args: IdentifyArgs, store_id: str, now: datetime) -> Json:
        if args.uid is not None:
            member_id = await self.store.member_by_uid(args.uid)
            if member_id is None:
                raise Refusal(RefusalCode.UNKNOWN_CARD, "no member has this card")
        else:
            assert args.member_id is not None
            member_id = args.member_id
        member = await self.store.member_profile(member_id, store_id=store_id, now=now)
        member["offers"] = await self.offers.available(member, store_id=store_id, now=now)
        return {"member": member}

    async def _clock_now(self, args: Json, store_id: str, gateway_id: str) -> Json:
        """The cloud's time, so ``provision doctor`` can measure the box's clock skew."""
        if set(args) - {"till"}:
            raise Refusal(RefusalCode.BAD_ARGS, "clock.now takes no arguments")
        return {"ok": True, "data": {"now": rfc3339(self.clock())}}

    async def _claim(self, args: Json, store_id: str, gateway_id: str) -> Json:
        try:
            claim = ClaimArgs.model_validate(args)
        except ValidationError as exc:
            raise bad_args(exc) from None
        return await self.offers.claim(
            claim, store_id=store_id, gateway_id=gateway_id, now=self.clock()
        )
