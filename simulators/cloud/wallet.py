"""The wallet RPCs - stored value (``balance.pay``, ``balance.refund``, ``balance.topup``) and
points spent or given back (``points.redeem``, ``points.reverse``), service packages used
(``package.consume``): their arguments and
answers; the rules are in :mod:`simulators.cloud.store.wallets` and ``.points``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from simulators.cloud.rpc import OFFLINE_AT_SKEW, bad_args
from simulators.cloud.store import KEY, CloudStore, Json, Refusal, RefusalCode


class _Offline(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    till: str | None = Field(default=None, pattern=KEY)
    offline_at: AwareDatetime | None = None
    """Set when the gateway reconciles a move it accepted offline."""


class _MoneyArgs(_Offline):
    amount: Decimal = Field(gt=0, allow_inf_nan=False, max_digits=12, decimal_places=2)


M = TypeVar("M", bound=_Offline)


class PointsRedeemArgs(_Offline):
    redeem_id: str = Field(pattern=KEY)
    member_id: str = Field(pattern=KEY)
    points: int = Field(ge=1, le=100_000_000)
    receipt_id: str = Field(pattern=KEY)
    credential_id: str | None = Field(default=None, pattern=KEY)


class PointsReverseArgs(_MoneyArgs):
    reversal_id: str = Field(pattern=KEY)
    accrual_id: str = Field(pattern=KEY)
    """The accrual of the purchase the items came back from; ``amount`` is their value."""


class PackageConsumeArgs(_Offline):
    use_id: str = Field(pattern=KEY)
    member_id: str = Field(pattern=KEY)
    package_id: str = Field(pattern=KEY)
    sessions: int = Field(ge=1, le=1000)
    credential_id: str | None = Field(default=None, pattern=KEY)


class JoinArgs(_Offline):
    join_id: str = Field(pattern=KEY)
    phone: str = Field(pattern=r"^\+[1-9]\d{6,14}$")
    """E.164; the cloud keeps it, the events carry its hash."""
    consent: Literal[True]
    """The member agreed to the programme's terms; no join without it."""
    marketing: bool = False
    name: str | None = Field(default=None, min_length=1, max_length=100)
    staff: str | None = Field(default=None, pattern=KEY)
    channel: Literal["till", "kiosk", "sticker", "app"] | None = None
    placement: str | None = Field(default=None, pattern=KEY)
    provisional_id: str | None = Field(default=None, pattern=KEY)
    """The member id the gateway handed out offline, mapped to the new member here."""


class PayArgs(_MoneyArgs):
    payment_id: str = Field(pattern=KEY)
    member_id: str = Field(pattern=KEY)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    receipt_id: str = Field(pattern=KEY)
    credential_id: str | None = Field(default=None, pattern=KEY)
    """The wallet credential an offline payment was allowed against."""


class RefundArgs(_MoneyArgs):
    refund_id: str = Field(pattern=KEY)
    payment_id: str = Field(pattern=KEY)


class TopupArgs(_MoneyArgs):
    topup_id: str = Field(pattern=KEY)
    member_id: str = Field(pattern=KEY)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    method: str = Field(pattern=KEY)
    """How the member paid for the top-up (``cash``, ``card``, ...), as the till says."""
    receipt_id: str = Field(pattern=KEY)


def _parse(model: type[M], args: Json, now: datetime) -> M:
    try:
        parsed = model.model_validate(args)
    except ValidationError as exc:
        raise bad_args(exc) from None
    if parsed.offline_at is not None and parsed.offline_at > now + OFFLINE_AT_SKEW:
        raise Refusal(RefusalCode.BAD_ARGS, "offline_at is in the future")
    return parsed


class WalletAnswers:
    """Mixed into :class:`~simulators.cloud.service.CloudService`."""

    store: CloudStore
    clock: Callable[[], datetime]

    async def _pay(self, args: Json, store_id: str, gateway_id: str) -> Json:
        now = self.clock()
        pay = _parse(PayArgs, args, now)
        return await self.store.pay(
            payment_id=pay.payment_id,
            member_id=pay.member_id,
            amount=pay.amount,
            currency=pay.currency,
            receipt_id=pay.receipt_id,
            where=(store_id, gateway_id, pay.till),
            offline_at=pay.offline_at,
            credential_id=pay.credential_id,
            now=now,
        )

    async def _redeem_points(self, args: Json, store_id: str, gateway_id: str) -> Json:
        now = self.clock()
        redeem = _parse(PointsRedeemArgs, args, now)
        return await self.store.redeem_points(
            redeem_id=redeem.redeem_id,
            member_id=redeem.member_id,
            points=redeem.points,
            receipt_id=redeem.receipt_id,
            where=(store_id, gateway_id, redeem.till),
            offline_at=redeem.offline_at,
            credential_id=redeem.credential_id,
            now=now,
        )

    async def _reverse_points(self, args: Json, store_id: str, gateway_id: str) -> Json:
        now = self.clock()
        reverse = _parse(PointsReverseArgs, args, now)
        return await self.store.reverse_points(
            reversal_id=reverse.reversal_id,
            accrual_id=reverse.accrual_id,
            amount=reverse.amount,
            where=(store_id, gateway_id, reverse.till),
            offline_at=reverse.offline_at,
            now=now,
        )

    async def _consume_package(self, args: Json, store_id: str, gateway_id: str) -> Json:
        now = self.clock()
        use = _parse(PackageConsumeArgs, args, now)
        return await self.store.consume_package(
            use_id=use.use_id,
            member_id=use.member_id,
            package_id=use.package_id,
            sessions=use.sessions,
            where=(store_id, gateway_id, use.till),
            offline_at=use.offline_at,
            credential_id=use.credential_id,
            now=now,
        )

    async def _join(self, args: Json, store_id: str, gateway_id: str) -> Json:
        now = self.clock()
        join = _parse(JoinArgs, args, now)
        return await self.store.join(
            join_id=join.join_id,
            phone=join.phone,
            name=join.name,
            marketing=join.marketing,
            where=(store_id, gateway_id, join.till),
            staff=join.staff,
            channel=join.channel,
            placement=join.placement,
            provisional_id=join.provisional_id,
            offline_at=join.offline_at,
            now=now,
        )

    async def _refund(self, args: Json, store_id: str, gateway_id: str) -> Json:
        now = self.clock()
        refund = _parse(RefundArgs, args, now)
        return await self.store.refund(
            refund_id=refund.refund_id,
            payment_id=refund.payment_id,
            amount=refund.amount,
            where=(store_id, gateway_id, refund.till),
            offline_at=refund.offline_at,
            now=now,
        )

    async def _topup(self, args: Json, store_id: str, gateway_id: str) -> Json:
        now = self.clock()
        topup = _parse(TopupArgs, args, now)
        return await self.store.topup(
            topup_id=topup.topup_id,
            member_id=topup.member_id,
            amount=topup.amount,
            currency=topup.currency,
            method=topup.method,
            receipt_id=topup.receipt_id,
            where=(store_id, gateway_id, topup.till),
            offline_at=topup.offline_at,
            now=now,
        )
