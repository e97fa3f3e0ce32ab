"""Members, their cards and phone credentials, and the points they accrue."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.ids import new_id
from gateway.wire.tokens import issue_member_credential
from simulators.cloud import seed
from simulators.cloud.store.base import (
    Json,
    Refusal,
    RefusalCode,
    StoreBase,
    iso,
    money,
    normalise_uid,
)


class MemberTables(StoreBase):
    async def add_member(
        self,
        member_id: str,
        name: str,
        *,
        tier: str = "basic",
        points: int = 0,
        balance: Decimal = Decimal("0.00"),
        currency: str = "EUR",
        tags: Iterable[str] = (),
        commit: bool = True,
    ) -> None:
        await self._write(
            "INSERT INTO members VALUES (?, ?, ?, ?, ?, ?, ?)",
            (member_id, name, tier, points, money(balance), currency, json.dumps(list(tags))),
            commit=commit,
        )

    async def add_card(
        self, uid: str, member_id: str, *, kind: str = "card", commit: bool = True
    ) -> None:
        await self._write(
            "INSERT OR REPLACE INTO cards VALUES (?, ?, ?)",
            (normalise_uid(uid), member_id, kind),
            commit=commit,
        )

    async def member_row(self, member_id: str) -> Json | None:
        row = await self.fetch_one(
            "SELECT member_id, name, tier, points, balance, currency, tags FROM members "
            "WHERE member_id = ?",
            (member_id,),
        )
        if row is None:
            return None
        return {
            "member_id": row[0],
            "name": row[1],
            "tier": row[2],
            "points": int(row[3]),
            "balance": row[4],
            "currency": row[5],
            "tags": json.loads(row[6]),
        }

    async def member_in(self, member_id: str, currency: str) -> Json:
        """The member, whose programme (points and stored value) must count ``currency``."""
        member = await self.member_row(member_id)
        if member is None:
            raise Refusal(RefusalCode.UNKNOWN_MEMBER, "no such member")
        if currency != member["currency"]:
            raise Refusal(
                RefusalCode.WRONG_CURRENCY,
                f"the member's programme counts {member['currency']}, not {currency}",
                {"currency": member["currency"]},
            )
        return member

    async def member_by_uid(self, uid: str) -> str | None:
        row = await self.fetch_one(
            "SELECT member_id FROM cards WHERE uid = ?", (normalise_uid(uid),)
        )
        return None if row is None else str(row[0])

    async def record_credential(
        self, member_id: str, phone_public: Ed25519PublicKey, *, now: datetime, expires: datetime
    ) -> str:
        """Issue a member credential for a phone and remember its id."""
        if await self.member_row(member_id) is None:
            raise KeyError(member_id)
        jti = f"cred-{new_id()}"
        credential = issue_member_credential(
            member_id,
            phone_public,
            self.signing_key,
            expires=expires,
            issued_at=now,
            credential_id=jti,
        )
        await self._write(
            "INSERT INTO credentials VALUES (?, ?, ?, ?)", (jti, member_id, iso(now), iso(expires))
        )
        return credential

    async def accrue(
        self,
        *,
        accrual_id: str,
        member_id: str,
        amount: Decimal,
        currency: str,
        items: list[Json],
        receipt_id: str | None,
        store_id: str,
        gateway_id: str,
        now: datetime,
    ) -> Json:
        """Add points for a purchase once per ``accrual_id`` and once per receipt of a store:
        the same purchase again (another key, another gateway) gets the first answer, another
        purchase on the same receipt is ``already_used``."""
        stored = await self._stored_reply("accruals", "accrual_id", accrual_id)
        if stored is not None:
            return stored
        member = await self.member_in(member_id, currency)
        if receipt_id is not None:
            earlier = await self._receipt_accrual(store_id, receipt_id)
            if earlier is not None:
                first_id, first_member, first_amount, first_reply = earlier
                if first_member == member_id and Decimal(first_amount) == amount:
                    return first_reply
                raise Refusal(
                    RefusalCode.ALREADY_USED,
                    f"receipt {receipt_id} already accrued points",
                    {"accrual_id": first_id, "member_id": first_member, "amount": first_amount},
                )
        multiplier = seed.TIER_MULTIPLIER.get(member["tier"], Decimal(1))
        added = math.floor(amount * multiplier)
        points = member["points"] + added
        reply = {"ok": True, "data": {"points_added": added, "points": points}}
        await self.db.execute(
            "UPDATE members SET points = ? WHERE member_id = ?", (points, member_id)
        )
        await self.db.execute(
            "INSERT INTO accruals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                accrual_id,
                member_id,
                str(amount),
                currency,
                receipt_id,
                json.dumps(items),
                store_id,
                gateway_id,
                iso(now),
                json.dumps(reply),
            ),
        )
        await self.db.commit()
        return reply

    async def _receipt_accrual(
        self, store_id: str, receipt_id: str
    ) -> tuple[str, str, str, Json] | None:
        row = await self.fetch_one(
            "SELECT accrual_id, member_id, amount, reply FROM accruals "
            "WHERE store_id = ? AND receipt_id = ? ORDER BY at LIMIT 1",
            (store_id, receipt_id),
        )
        if row is None:
            return None
        return str(row[0]), str(row[1]), str(row[2]), dict(json.loads(row[3]))
