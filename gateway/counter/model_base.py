"""What every counter model shares: the id and amount field types, and the bases of
requests (frozen, unknown fields refused) and answers (they say who decided)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

from gateway.wire.tokens.conditions import Amount

Mode = Literal["online", "offline"]
ID = r"^[A-Za-z0-9_.:-]{1,64}$"
"""Till, member, appointment, receipt and idempotency-key ids."""
UID = r"^[0-9A-Fa-f: ]{2,64}$"
"""A card or NFC UID as hex; colons and spaces are tolerated and stripped."""


DECIMAL = r"^\d{1,10}(\.\d{1,4})?$"
"""A non-negative amount as a JSON string, at most 10 integer and 4 fractional digits."""
COUPON = r"^SGC1:\S+$"
"""A scanned coupon's text; the signature and claims are checked by the counter (422)."""
PICKUP = r"^SGP1:[!-~]+$"
"""A scanned pickup code's text (到店自提); checked by the counter like a coupon (422).
Printable ASCII spelled out: "\\S" differs between Python (U+0085 is a space) and the
ECMA-262 regexes of JSON Schema, and a token is ASCII anyway."""


DecimalString = Amount
"""A non-negative amount as a JSON string; a JSON number is refused, not rounded (one
definition with the basket's, :mod:`gateway.wire.tokens.conditions`)."""


def normalise_uid(uid: str) -> str:
    return uid.replace(":", "").replace(" ", "").lower()


class RequestModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AnswerModel(BaseModel):
    model_config = ConfigDict(frozen=True)

    mode: Mode
    """``online`` when the cloud answered, ``offline`` when the gateway decided alone."""


MONEY = r"^\d{1,10}(\.\d{1,2})?$"
"""A stored-value amount as a JSON string: whole cents, at most 10 integer digits."""
WALLET = r"^SGW1:\S+$"


def _money_string(value: object) -> object:
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str) or not re.fullmatch(MONEY, value):
        raise ValueError('must be an amount in whole cents such as "12.50" (not a JSON number)')
    if Decimal(value) <= 0:
        raise ValueError("must be more than zero")
    return value


Money = Annotated[
    Decimal,
    BeforeValidator(_money_string),
    WithJsonSchema(
        {"type": "string", "pattern": MONEY, "not": {"pattern": r"^0+(\.0+)?$"}},
        mode="validation",
    ),
]
"""A positive amount of stored value; a zero payment or refund is a mistake, not a no-op."""
