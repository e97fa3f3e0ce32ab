"""Joining at the till or a kiosk (入会 / 开卡): online the cloud makes the member; offline the
join is accepted ``pending`` with a provisional member id (``P-...``) the till uses at once -
the member is identified at the till under it, and what is done for them offline carries it;
the cloud maps it to the new member when the join is reconciled, so nothing is lost. The
phone number goes to the cloud only; events carry its hash (:func:`op_kinds.phone_hash`)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field, replace

from core.events import JsonObject
from gateway.counter.asset_models import JoinAnswer, JoinRequest
from gateway.counter.operations import OfflineRule, Operations
from gateway.counter.origin import Origin


@dataclass(eq=False)
class Joins:
    operations: Operations
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def join(self, req: JoinRequest, origin: Origin, *, channel: str) -> JoinAnswer:
        args: JsonObject = {
            "join_id": req.join_id,
            "phone": req.phone,
            "consent": True,
            "marketing": req.marketing,
            "till": req.till,
            "channel": channel,
        }
        staff = req.staff or origin.staff
        if staff != origin.staff:  # the request names who served: its events say so too
            origin = replace(origin, staff=staff)
        for key, value in (("name", req.name), ("placement", req.placement), ("staff", staff)):
            if value is not None:
                args[key] = value
        ops = self.operations

        async def decide() -> JsonObject:
            offline = await ops.offline_now()
            return {**offline, "provisional_id": f"P-{uuid.uuid4().hex[:16]}"}

        rule = OfflineRule(ops._checkins, decide)
        op = await ops.record(req.join_id, "join", args, req.till, origin, offline=rule)
        result = op.result or {}
        pending = op.status == "pending"
        member_id = str(op.args["provisional_id"] if pending else result.get("member_id"))
        ops.tills.start(req.till, member_id)
        existing = result.get("existing")
        return JoinAnswer(
            mode="offline" if pending else "online",
            status="pending" if pending else "confirmed",
            join_id=req.join_id,
            member_id=member_id,
            provisional=pending,
            existing=existing if isinstance(existing, bool) else None,
        )
