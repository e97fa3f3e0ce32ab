"""The wallet RPCs - stored value (``balance.pay``, ``balance.refund``, ``balance.topup``) and
points spent or given back (``points.redeem``, ``points.reverse``), service packages used
(``package.consume``): their arguments and
answers; the rules are in :mod:`simulators.cloud.store.wallets` and ``.points``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from simulators.cloud.rpc import OFFLINE_AT_SKEW, RpcMethod, bad_args
from simulators.cloud.store import KEY, CloudStore, Json, Refusal, RefusalCode


class _Offline(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    till: str | None = Field(default=None, pattern=KEY)
    offline_at: AwareDatetime | None = None
    """Set when the gateway reconciles a move it accepted offline."""


class _MoneyArgs(_Offline):
    amount: Decimal = Field(gt=0, allow_inf_nan=False, max_digits=12, decimal_places=2)


M = TypeVar("M", bound=_Offline)
_NOT_PASSED = ("till", "consent")
"""Fields the store's moves do not take: ``till`` goes into ``where``; a join's ``consent`` is
the model's to check (no join without it)."""


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

    async def _apply(
        self,
        model: type[M],
        move: Callable[..., Awaitable[Json]],
        args: Json,
        store_id: str,
        gateway_id: str,
    ) -> Json:
        """Parse ``args`` into ``model`` and make the store's ``move`` with its fields, named
        as the model names them; ``till`` becomes ``where`` (the store, gateway and till the
        move was made at)."""
        now = self.clock()
        parsed = _parse(model, args, now)
        fields = {k: getattr(parsed, k) for k in model.model_fields if k not in _NOT_PASSED}
        return await move(**fields, where=(store_id, gateway_id, parsed.till), now=now)

    def wallet_methods(self) -> dict[str, RpcMethod]:
        """The wallet RPCs by name: each parses its arguments and makes the store's move."""
        store = self.store
        moves: dict[str, tuple[type[_Offline], Callable[..., Awaitable[Json]]]] = {
            "balance.pay": (PayArgs, store.pay),
            "balance.refund": (RefundArgs, store.refund),
            "balance.topup": (TopupArgs, store.topup),
            "points.redeem": (PointsRedeemArgs, store.redeem_points),
            "points.reverse": (PointsReverseArgs, store.reverse_points),
            "package.consume": (PackageConsumeArgs, store.consume_package),
            "member.join": (JoinArgs, store.join),
        }
        return {name: partial(self._apply, *move) for name, move in moves.items()}
