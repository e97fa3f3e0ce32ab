"""Holding a token with the store's ledger, in the counter's own terms: the refusals a till
hears when another till of the store has it, or when the store's ledger cannot be reached."""

from __future__ import annotations

from core.ids import rfc3339
from gateway.counter.errors import CounterError
from gateway.counter.ledger import Ledger
from gateway.counter.reservations import AuthorityUnreachable, Claim, Taken


def claim_for(ledger: Ledger, token: str, key: str, till: str | None) -> Claim:
    return Claim(
        token=token, key=key, gateway=ledger.gateway_id, till=till, at=rfc3339(ledger.clock())
    )


async def hold(ledger: Ledger, claim: Claim, noun: str) -> bool:
    """True when held; False when the store's ledger is unreachable (the caller decides);
    another till's hold is the ``already_used`` refusal, naming it."""
    try:
        await ledger.reservations.reserve(claim)
    except Taken as exc:
        holder = exc.holder
        raise CounterError(
            "already_used",
            f"this {noun} was already used at another till of this store",
            mode="offline",
            details={
                "used_at": holder.at,
                "till": holder.till,
                "gateway": holder.gateway,
                "status": "reserved",
            },
        ) from None
    except AuthorityUnreachable:
        return False
    return True


def unreachable() -> CounterError:
    return CounterError(
        "needs_cloud",
        "the cloud and the store's ledger authority are both unreachable",
        mode="offline",
        details={"store_ledger": "unreachable"},
    )
