"""Points spent and given back: redeemed for a discount at the cloud's rate, reversed when
items of a purchase come back. Each move is keyed by the gateway's idempotency key and stores
its answer; a redemption made offline (``offline_at``) is applied even when the points no
longer cover it, and names the shortfall (the discount was given)."""

from __future__ import annotations

import json
import math
from datetime import datetime
from decimal import Decimal
from typing import Literal

from simulators.cloud import seed
from simulators.cloud.store.base import Json, Refusal, RefusalCode, made, money
from simulators.cloud.store.wallets import WalletTables

MoveKind = Literal["redeem", "reverse"]


class PointsTables(WalletTables):
    async def _move(self, move_id: str, kind: MoveKind, fingerprint: Json) -> Json | None:
        row = await self.fetch_one(
            "SELECT kind, member_id, points, amount, ref, reply FROM points_moves "
            "WHERE move_id = ?",
            (move_id,),
        )
        if row is None:
            return None
        known = {"kind": row[0], "member_id": row[1], "points": row[2], "amount": row[3]}
        known["ref"] = row[4]
        if any(known[k] != v for k, v in {"kind": kind, **fingerprint}.items()):
            raise Refusal(RefusalCode.BAD_ARGS, f"the id was used for another points {kind}")
        return dict(json.loads(row[5]))

    async def _record_move(
        self,
        move_id: str,
        kind: MoveKind,
        *,
        member_id: str,
        points: int,
        new_points: int,
        reply: Json,
        where: tuple[str, str, str | None],
        amount: str | None = None,
        ref: str | None = None,
        receipt_id: str | None = None,
        offline_at: datetime | None = None,
        credential_id: str | None = None,
        now: datetime,
    ) -> Json:
        await self.db.execute(
            "UPDATE members SET points = ? WHERE member_id = ?", (new_points, member_id)
        )
        await self._bump_wallet(member_id)
        await self.db.execute(
            "INSERT INTO points_moves VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                move_id,
                kind,
                member_id,
                points,
                amount,
                ref,
                receipt_id,
                *made(where, now, offline_at, credential_id, reply),
            ),
        )
        await self.db.commit()
        return reply

    async def redeem_points(
        self,
        *,
        redeem_id: str,
        member_id: str,
        points: int,
        receipt_id: str,
        where: tuple[str, str, str | None],
        offline_at: datetime | None,
        credential_id: str | None,
        now: datetime,
    ) -> Json:
        """Points for a discount worth ``points`` x ``POINTS_VALUE`` in the member's currency."""
        fingerprint: Json = {"member_id": member_id, "points": points, "amount": None, "ref": None}
        stored = await self._move(redeem_id, "redeem", fingerprint)
        if stored is not None:
            return stored
        member = await self.member_row(member_id)
        if member is None:
            raise Refusal(RefusalCode.UNKNOWN_MEMBER, "no such member")
        held = int(member["points"])
        if offline_at is None and held < points:
            raise Refusal(
                RefusalCode.INSUFFICIENT_POINTS,
                "the member does not hold that many points",
                {"points": held},
            )
        if offline_at is not None:
            await self._check_credential(credential_id, member_id)
        after = held - points
        data: Json = {
            "redeem_id": redeem_id,
            "points_redeemed": points,
            "value": money(points * seed.POINTS_VALUE),
            "currency": member["currency"],
            "points": after,
        }
        if after < 0:
            data["shortfall"] = min(points, -after)
        return await self._record_move(
            redeem_id,
            "redeem",
            member_id=member_id,
            points=points,
            new_points=after,
            reply={"ok": True, "data": data},
            where=where,
            receipt_id=receipt_id,
            offline_at=offline_at,
            credential_id=credential_id,
            now=now,
        )

    async def reverse_points(
        self,
        *,
        reversal_id: str,
        accrual_id: str,
        amount: Decimal,
        where: tuple[str, str, str | None],
        offline_at: datetime | None,
        now: datetime,
    ) -> Json:
        """Take back the points of returned items: ``amount`` of the purchase at the rate it
        earned, at most what the accrual added less earlier reversals of it."""
        row = await self.fetch_one(
            "SELECT member_id, amount, reply FROM accruals WHERE accrual_id = ?", (accrual_id,)
        )
        if row is None:
            raise Refusal(RefusalCode.NOT_FOUND, "no such accrual")
        member_id, bought = str(row[0]), Decimal(row[1])
        added = int(json.loads(row[2])["data"]["points_added"])
        fingerprint: Json = {"member_id": member_id, "amount": str(amount), "ref": accrual_id}
        stored = await self._move(reversal_id, "reverse", fingerprint)
        if stored is not None:
            return stored
        earlier = await self.fetch_all(
            "SELECT points, amount FROM points_moves WHERE kind = 'reverse' AND ref = ?",
            (accrual_id,),
        )
        returned = sum((Decimal(r[1]) for r in earlier), Decimal(0))
        if amount > bought - returned:
            raise Refusal(
                RefusalCode.OVER_REFUND,
                "a return is at most what the purchase paid, less earlier returns",
                {"refundable": money(bought - returned)},
            )
        taken = sum(int(r[0]) for r in earlier)
        removed = min(math.floor(added * amount / bought) if bought else 0, added - taken)
        member = await self.member_row(member_id)
        assert member is not None
        after = int(member["points"]) - removed
        data: Json = {
            "reversal_id": reversal_id,
            "accrual_id": accrual_id,
            "member_id": member_id,
            "points_removed": removed,
            "points": after,
        }
        return await self._record_move(
            reversal_id,
            "reverse",
            member_id=member_id,
            points=removed,
            new_points=after,
            reply={"ok": True, "data": data},
            where=where,
            amount=str(amount),
            ref=accrual_id,
            offline_at=offline_at,
            now=now,
        )
