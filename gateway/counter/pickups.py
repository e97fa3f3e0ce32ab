"""Pickup of online orders (到店自提): a coupon redemption whose token is an order.

The member shows the order's pickup code (``SGP1:``); it is verified locally (a forged,
altered, expired or other store's code never reaches the cloud), claimed in memory while the
cloud is asked (a second pickup of the order meanwhile is refused), and recorded once: the
ledger row with its ``order.picked_up`` event in one transaction. The ledger's one live row
per order makes a second pickup in this store impossible even offline; what was handed over
offline is put to the cloud by the reconciler, and a refusal then becomes a listed conflict.
There is no offline value limit: the goods were paid for online.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Literal

from core.ids import new_id, rfc3339
from gateway.counter.answer_models import PickupAnswer, PickupLineAnswer
from gateway.counter.conflict_models import PickupConflict, PickupWinner
from gateway.counter.desk import TokenDesk
from gateway.counter.errors import CounterError
from gateway.counter.origin import Origin
from gateway.counter.request_models import PickupRequest
from gateway.counter.rows import PickupRow, fresh
from gateway.counter.single_use import SingleUse
from gateway.counter.token_wire import token_args
from gateway.rpc import RpcError, RpcRefused
from gateway.wire.tokens import Pickup, verify_pickup

_PICKUP_TOKEN_CODES = {
    "bad_signature": "bad_signature",
    "unknown_key": "bad_signature",
    "expired": "expired",
    "not_yet_valid": "not_yet_valid",
    "wrong_store": "wrong_store",
}
_PICKUP_CLOUD_CODES = {
    "bad_signature": "bad_signature",
    "not_found": "unknown_order",
    "already_collected": "already_used",
}


@dataclass(eq=False, kw_only=True)
class Pickups(TokenDesk):
    store_id: str
    _once: SingleUse[PickupRow] = field(init=False)

    def __post_init__(self) -> None:
        store = self.ledger.store
        self._once = SingleUse(
            self.ledger,
            what="pickup",
            noun="order",
            key_name="pickup_id",
            row_key=lambda row: row.pickup_id,
            token_id=lambda row: row.order_id,
            find=store.pickup,
            live=store.live_pickup,
            put=store.put_pickup,
            emit=lambda row: self.ledger.emit_picked_up(row, write=True),
            taken=self._taken,
        )

    def _verify(self, text: str) -> Pickup:
        return self.verified(
            lambda keys, now: verify_pickup(text, keys, store_id=self.store_id, now=now),
            _PICKUP_TOKEN_CODES,
            "invalid_pickup",
        )

    async def pickup(self, req: PickupRequest, origin: Origin) -> PickupAnswer:
        text = req.code.strip()
        order = self._verify(text)
        # The code names the order's member; one the request names is recorded as given (the
        # code is what is shown, like a coupon: a friend may collect it).
        member_id = req.member_id or order.member_id
        pid = req.pickup_id or new_id()
        if req.pickup_id is not None:
            earlier = await self._once.earlier(pid, order.order_id)
            if earlier is not None:
                return _answer(earlier)
        row = PickupRow(
            pickup_id=pid,
            order_id=order.order_id,
            token=text,
            till=req.till,
            member_id=member_id,
            lines=order.lines_json(),
            device_id=origin.device_id,
            origin={**origin.event_fields()},
            **fresh(time.time()),
        )
        return _answer(await self._once.use(row, self._decide))

    def _taken(self, prior: PickupRow) -> CounterError:
        return CounterError(
            "already_used",
            "this order was already picked up in this store",
            mode=self.ledger.mode_now(),
            details={
                "collected_at": rfc3339(prior.created),
                "till": prior.till,
                "status": prior.status,
                "store_id": self.store_id,
                "pickup_id": prior.pickup_id,
            },
        )

    async def _decide(self, row: PickupRow) -> PickupRow:
        """The cloud decides if it answers; otherwise the offline rules (verified, not yet
        picked up here) accept it as pending. A refusal is kept (no event) and raised."""
        try:
            data = await self.ledger.call("order.pickup", token_args(row, "code", "pickup_id"))
        except RpcRefused as exc:
            raise await self._once.refused(row, exc, _PICKUP_CLOUD_CODES) from None
        except RpcError:
            return self._once.offline(row)
        return replace(row, status="accepted", cloud=data, attempts=1, updated=time.time())

    async def conflicts(self) -> list[PickupConflict]:
        out = []
        for row in await self.ledger.store.pickups("conflict"):
            cloud = row.cloud or {}
            out.append(
                PickupConflict(
                    pickup_id=row.pickup_id,
                    order_id=row.order_id,
                    reason=str(cloud.get("code", "rejected")),
                    message=str(cloud.get("message", "")),
                    till=row.till,
                    member_id=row.member_id,
                    lines=[PickupLineAnswer.model_validate(line) for line in row.lines],
                    offline_at=row.offline_at,
                    detected_at=rfc3339(row.updated),
                    cloud=cloud.get("details"),
                    winner=PickupWinner.from_details(cloud.get("details")),
                )
            )
        return out


def _answer(row: PickupRow) -> PickupAnswer:
    offline = row.offline_at is not None
    status: Literal["accepted", "pending"] = "pending" if row.status == "pending" else "accepted"
    return PickupAnswer(
        mode="offline" if offline else "online",
        status=status,
        pickup_id=row.pickup_id,
        order_id=row.order_id,
        member_id=row.member_id,
        lines=[PickupLineAnswer.model_validate(line) for line in row.lines],
        till=row.till,
        offline=offline,
    )
