"""What the store-scoped tokens (coupons, pickup codes) share: whole-second UTC times, a
store scope, and their verification."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any, Protocol, TypeVar

from pydantic import AfterValidator

from gateway.wire.tokens.errors import TokenError
from gateway.wire.tokens.jws import check_times, decode, epoch, token_body, whole_seconds
from gateway.wire.tokens.keys import KeySet


def _scope(v: tuple[str, ...]) -> tuple[str, ...]:
    if not v or not all(isinstance(s, str) and s for s in v):
        raise ValueError("stores lists at least one store id (or '*')")
    return v


TokenTime = Annotated[datetime, AfterValidator(whole_seconds)]
"""UTC, whole seconds: a JWT carries NumericDate seconds, so a model equals its round trip."""
StoreScope = Annotated[tuple[str, ...], AfterValidator(_scope)]
"""Store ids a token is valid in, or ``("*",)`` for every store."""


class Scoped(Protocol):
    """A token model valid for a time window in some stores."""

    @property
    def expires(self) -> datetime: ...

    @property
    def not_before(self) -> datetime | None: ...

    def valid_in(self, store_id: str) -> bool: ...


S = TypeVar("S", bound=Scoped)


def verify_scoped(
    text: str,
    keys: KeySet,
    *,
    prefix: str,
    typ: str,
    parse: Callable[[Mapping[str, Any]], S],
    store_id: str,
    now: datetime,
) -> S:
    """Check a scanned store-scoped token: signature, ``typ``, time window, store scope.

    Using it once is not decided here: that takes the cloud (online) or the gateway's ledger.
    """
    claims = decode(token_body(text, prefix), keys)
    if claims.get("typ") != typ:
        raise TokenError("wrong_type", f"token is not a {typ}")
    token = parse(claims)
    check_times(
        epoch(token.expires), None if token.not_before is None else epoch(token.not_before), now
    )
    if not token.valid_in(store_id):
        raise TokenError("wrong_store", f"{typ} is not valid in this store")
    return token
