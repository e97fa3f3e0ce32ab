"""Coupon conditions judged against the till's basket: one pure function for both sides.

The gateway judges a conditional coupon at the till (online or offline) and the cloud judges
it again when asked or when reconciling; both call :func:`evaluate`, so an offline answer is
the one the cloud will give (docs/member-services.md, "Coupons that know the basket").
Money is :class:`~decimal.Decimal` throughout: a percentage is rounded to cents half-even, and
the bounds (the in-scope total, ``cap``) are taken down to cents so the discount never
exceeds them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from core.errors import StoregwError

CENT = Decimal("0.01")
AMOUNT = r"^\d{1,10}(\.\d{1,4})?$"
"""A non-negative amount as a string: at most 10 integer and 4 fractional digits."""


def _amount_string(value: object) -> object:
    """JSON amounts are strings (``"12.50"``): a JSON number is a float to most clients, so
    it is refused rather than rounded. Decimals built in Python pass."""
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str) or not re.fullmatch(AMOUNT, value):
        raise ValueError('must be a decimal string such as "12.50" (not a JSON number)')
    return value


Amount = Annotated[
    Decimal,
    BeforeValidator(_amount_string),
    WithJsonSchema({"type": "string", "pattern": AMOUNT}, mode="validation"),
]
"""An amount as the API and the RPCs take it; the local API's OpenAPI document is built from
these models, so its schema says string (the counter's ``DecimalString``)."""
Money = Annotated[Amount, Field(ge=0, allow_inf_nan=False)]
"""An amount of a basket or a condition: also a Decimal built in Python must be one."""
Name = Annotated[str, Field(min_length=1, max_length=64)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BasketLine(_Frozen):
    sku: Name
    category: Name | None = None
    qty: int = Field(ge=1, le=100_000, strict=True)
    price: Money
    """The unit price."""

    @property
    def total(self) -> Decimal:
        return self.price * self.qty


class Basket(_Frozen):
    """What the till is selling: the receipt it will print, its lines."""

    receipt_id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    lines: tuple[BasketLine, ...] = Field(min_length=1, max_length=500)

    @property
    def total(self) -> Decimal:
        return sum((line.total for line in self.lines), Decimal(0))


class Conditions(_Frozen):
    """A coupon's ``cond`` claim; every key is optional, an unknown one is refused."""

    min_spend: Money | None = None
    """Over the whole basket."""
    skus: tuple[Name, ...] = Field(default=(), max_length=200)
    categories: tuple[Name, ...] = Field(default=(), max_length=200)
    pct: Money | None = None
    """Percent off the in-scope lines (0 < pct <= 100) instead of the coupon's value."""
    cap: Money | None = None
    """At most this discount (with ``pct``)."""
    grp: Name | None = None
    """The offer the coupon belongs to: coupons of one offer share it."""
    per_receipt: int | None = Field(default=None, ge=1, le=100, strict=True)
    """At most this many coupons of ``grp`` on one receipt (usually 1)."""

    @model_validator(mode="after")
    def _pct(self) -> Conditions:
        if self.pct is not None and not Decimal(0) < self.pct <= Decimal(100):
            raise ValueError("pct must be above 0 and at most 100")
        if self.cap is not None and self.pct is None:
            raise ValueError("cap goes with pct")
        if (self.grp is None) != (self.per_receipt is None):
            raise ValueError("grp and per_receipt go together")
        return self

    def in_scope(self, line: BasketLine) -> bool:
        if not self.skus and not self.categories:
            return True
        return line.sku in self.skus or (
            line.category is not None and line.category in self.categories
        )

    def as_claim(self) -> dict[str, Any]:
        """The claim as signed: only the keys that are set, amounts as strings."""
        return self.model_dump(mode="json", exclude_defaults=True)


class Discount(_Frozen):
    amount: Decimal
    lines: tuple[int, ...] = ()
    """0-based indexes of the basket lines it applied to (none without a basket)."""

    def as_json(self) -> dict[str, Any]:
        return {"amount": str(self.amount), "lines": list(self.lines)}

    @classmethod
    def from_json(cls, doc: object) -> Discount | None:
        """A discount as :meth:`as_json` wrote it; None for anything else (older rows)."""
        if not isinstance(doc, Mapping):
            return None
        amount, lines = doc.get("amount"), doc.get("lines", [])
        if not isinstance(amount, str) or not re.fullmatch(AMOUNT, amount):
            return None
        if not isinstance(lines, list) or not all(type(i) is int and i >= 0 for i in lines):
            return None
        return cls(amount=Decimal(amount), lines=tuple(lines))


class ConditionCode(StrEnum):
    MIN_SPEND_NOT_MET = "min_spend_not_met"
    NOT_APPLICABLE = "not_applicable"


class ConditionError(StoregwError):
    """The basket does not qualify; ``code`` and ``details`` are safe to show and send."""

    def __init__(self, code: ConditionCode, message: str, details: dict[str, str]) -> None:
        super().__init__(code, message)
        self.details = details


def _cents(value: Decimal, rounding: str) -> Decimal:
    return value.quantize(CENT, rounding=rounding)


def evaluate(value: Decimal, cond: Conditions | None, basket: Basket | None) -> Discount:
    """The discount a coupon worth ``value`` with conditions ``cond`` gives on ``basket``, or
    :class:`ConditionError` when the basket does not qualify."""
    if basket is None:
        if cond is not None:
            raise ConditionError(
                ConditionCode.NOT_APPLICABLE,
                "this coupon has conditions: redeem it with the basket",
                {"why": "no_basket"},
            )
        return Discount(amount=value)
    spent = basket.total
    if cond is not None and cond.min_spend is not None and spent < cond.min_spend:
        raise ConditionError(
            ConditionCode.MIN_SPEND_NOT_MET,
            f"the basket spends {spent}, the coupon needs {cond.min_spend}",
            {"min_spend": str(cond.min_spend), "spent": str(spent)},
        )
    lines = tuple(i for i, line in enumerate(basket.lines) if cond is None or cond.in_scope(line))
    if not lines:
        raise ConditionError(
            ConditionCode.NOT_APPLICABLE,
            "no line of the basket is in the coupon's scope",
            {"why": "no_lines_in_scope"},
        )
    scope_total = _cents(sum((basket.lines[i].total for i in lines), Decimal(0)), ROUND_DOWN)
    if cond is not None and cond.pct is not None:
        amount = _cents(scope_total * cond.pct / 100, ROUND_HALF_EVEN)
        if cond.cap is not None:
            amount = min(amount, _cents(cond.cap, ROUND_DOWN))
    else:
        amount = value
    return Discount(amount=min(amount, scope_total), lines=lines)


def check_per_receipt(cond: Conditions | None, basket: Basket | None, earlier: int) -> None:
    """Refuse a coupon whose offer already has ``per_receipt`` coupons on ``basket``'s receipt;
    ``earlier`` is how many the caller's ledger holds (live) for that receipt and ``grp``."""
    if cond is None or cond.per_receipt is None or basket is None:
        return
    if earlier >= cond.per_receipt:
        raise ConditionError(
            ConditionCode.NOT_APPLICABLE,
            f"this offer allows {cond.per_receipt} coupon(s) per receipt",
            {
                "why": "per_receipt",
                "receipt_id": basket.receipt_id,
                "per_receipt": str(cond.per_receipt),
            },
        )
