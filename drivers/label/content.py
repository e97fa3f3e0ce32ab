"""What a shelf label shows: a product with its prices, validated before anything is drawn.

Prices are :class:`~decimal.Decimal` with at most two decimals (no float rounding, and nothing
is rounded silently: a third decimal is refused rather than rounded away).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal
from urllib.parse import urlsplit

import babel.numbers
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Money = Annotated[Decimal, Field(ge=0, max_digits=9, decimal_places=2, allow_inf_nan=False)]
"""0 .. 9 999 999.99 in the currency's major unit."""

_SYMBOLS: dict[str, str] = {
    "EUR": "€",
    "USD": "$",
    "GBP": "£",
    "JPY": "¥",
    "CNY": "¥",
    "HKD": "HK$",
    "TWD": "NT$",
    "KRW": "₩",
    "INR": "₹",
    "CHF": "CHF",
    "SEK": "kr",
    "NOK": "kr",
    "DKK": "kr",
    "PLN": "zł",
    "CZK": "Kč",
}
_ZERO_DECIMALS = frozenset({"JPY", "KRW", "ISK"})


class UnitPrice(BaseModel):
    """Price per unit of measure, e.g. 2.49 per kg (shown as ``€2.49/kg``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: Money
    unit: str = Field(min_length=1, max_length=12, pattern=r"^[^\s/][^/]*$")
    """``kg``, ``l``, ``100 g``, ``piece`` ..."""


class ProductContent(BaseModel):
    """One product as a label shows it."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    price: Money
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    """ISO 4217 code."""
    promo_price: Money | None = None
    """Shown big and red; the regular price is then shown struck through."""
    member_price: Money | None = None
    """Loyalty-member price, shown red next to its label."""
    member_label: str = Field(default="Member", min_length=1, max_length=24)
    unit_price: UnitPrice | None = None
    url: str | None = Field(default=None, max_length=512)
    """Product page; drawn as a QR code."""
    promo_text: str | None = Field(default=None, min_length=1, max_length=120)
    """A short line such as "2 for 1 until Sunday"."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        parts = urlsplit(value or "")
        if value is not None and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise ValueError("url must be an http(s) address")
        return value

    @model_validator(mode="after")
    def _check_prices(self) -> ProductContent:
        if self.promo_price is not None and self.promo_price >= self.price:
            raise ValueError("promo_price must be lower than price")
        if self.member_price is not None and self.member_price >= self.price:
            raise ValueError("member_price must be lower than price")
        if self.currency in _ZERO_DECIMALS:
            amounts = [self.price, self.promo_price, self.member_price]
            if self.unit_price is not None:
                amounts.append(self.unit_price.amount)
            for amount in amounts:
                if amount is not None and amount != amount.to_integral_value():
                    raise ValueError(f"{self.currency} prices have no decimals")
        return self


class PriceFormat(BaseModel):
    """How money is written on this store's labels."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    decimal_separator: Literal[".", ","] = "."
    currency_position: Literal["prefix", "suffix"] = "prefix"
    locale: str | None = None
    """When set, CLDR's format for this locale (Babel) replaces the two settings above."""


def currency_symbol(currency: str, locale: str | None = None) -> str:
    """The sign shoppers read (``¥`` for CNY); the locale's own when one is given."""
    if locale is not None:
        return str(babel.numbers.get_currency_symbol(currency, locale=locale))
    return _SYMBOLS.get(currency, currency)


def format_money(
    amount: Decimal,
    currency: str,
    fmt: PriceFormat | None = None,
    *,
    symbol: str | None = None,
) -> str:
    """``€2.49`` / ``2,49 €``; exact (two decimals, or none for zero-decimal currencies)."""
    fmt = fmt or PriceFormat()
    if fmt.locale is not None:
        text = str(babel.numbers.format_currency(amount, currency, locale=fmt.locale))
        own = currency_symbol(currency, fmt.locale)
        return text if symbol is None or symbol == own else text.replace(own, symbol)
    decimals = 0 if currency in _ZERO_DECIMALS else 2
    number = f"{amount:.{decimals}f}"
    if fmt.decimal_separator == ",":
        number = number.replace(".", ",")
    sym = currency_symbol(currency) if symbol is None else symbol
    if fmt.currency_position == "suffix" or len(sym) > 1:
        return f"{number} {sym}"
    return f"{sym}{number}"


def format_unit_price(
    unit: UnitPrice, currency: str, fmt: PriceFormat | None = None, *, symbol: str | None = None
) -> str:
    return f"{format_money(unit.amount, currency, fmt, symbol=symbol)}/{unit.unit}"


__all__ = [
    "Money",
    "PriceFormat",
    "ProductContent",
    "UnitPrice",
    "currency_symbol",
    "format_money",
    "format_unit_price",
]
