"""Joining (入会 / 开卡): a new member from a phone number and the member's consent, at a till
or a kiosk. The cloud keeps the number (events carry only its hash); a number that is already
a member's answers that member (``existing``), once per ``join_id``. A join made offline comes
with the gateway's provisional member id; the cloud maps it to the new member, so whatever the
till did for the provisional id offline lands on the member (:meth:`resolve_member`)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

from simulators.cloud.store.base import Json, Refusal, RefusalCode, iso
from simulators.cloud.store.packages import PackageTables


class JoinTables(PackageTables):
    _join_lock: asyncio.Lock | None = None
    """One join at a time: a new member's id is the next free number, and joins arrive from
    every gateway's RPC and from the sticker landing page alike."""

    async def resolve_member(self, member_id: str) -> str:
        """The member a provisional id (``P-...``, made offline by a gateway) became."""
        row = await self.fetch_one(
            "SELECT member_id FROM joins WHERE provisional_id = ?", (member_id,)
        )
        return member_id if row is None else str(row[0])

    async def join(
        self,
        *,
        join_id: str,
        phone: str,
        name: str | None,
        marketing: bool,
        where: tuple[str, str, str | None],
        staff: str | None,
        channel: str | None,
        placement: str | None,
        provisional_id: str | None,
        offline_at: datetime | None,
        now: datetime,
    ) -> Json:
        if self._join_lock is None:
            self._join_lock = asyncio.Lock()
        async with self._join_lock:  # the next member id is read, then written
            stored = await self.fetch_one(
                "SELECT phone, reply FROM joins WHERE join_id = ?", (join_id,)
            )
            if stored is not None:
                if stored[0] != phone:
                    raise Refusal(RefusalCode.BAD_ARGS, "join_id was used for another join")
                return dict(json.loads(stored[1]))
            store_id, gateway_id, till = where
            known = await self.fetch_one(
                "SELECT member_id FROM member_phones WHERE phone = ?", (phone,)
            )
            existing = known is not None
            if known is not None:
                member_id = str(known[0])
            else:
                count = await self.fetch_one("SELECT count(*) FROM members")
                member_id = f"M{5001 + int(count[0] if count else 0)}"
                await self.add_member(member_id, name or "New member", commit=False)
                await self.db.execute("INSERT INTO member_phones VALUES (?, ?)", (phone, member_id))
            profile = await self.member_row(member_id)
            if profile is None:  # pragma: no cover - written just above
                raise Refusal(RefusalCode.INTERNAL, "the new member was not stored")
            reply: Json = {
                "ok": True,
                "data": {"join_id": join_id, "member_id": member_id, "existing": existing},
            }
            if provisional_id is not None:
                reply["data"]["provisional_id"] = provisional_id
            await self.db.execute(
                "INSERT INTO joins VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    join_id,
                    member_id,
                    phone,
                    int(marketing),
                    store_id,
                    gateway_id,
                    till,
                    staff,
                    channel,
                    placement,
                    provisional_id,
                    iso(now),
                    None if offline_at is None else iso(offline_at),
                    json.dumps(reply),
                ),
            )
            await self.db.commit()
            return reply

    async def join_record(self, member_id: str) -> Json | None:
        """Where a member joined (the source head office attributes the member to)."""
        row = await self.fetch_one(
            "SELECT store_id, till, staff, channel, placement, marketing, at FROM joins"
            " WHERE member_id = ? ORDER BY at LIMIT 1",
            (member_id,),
        )
        if row is None:
            return None
        keys = ("store_id", "till", "staff", "channel", "placement", "marketing", "at")
        return dict(zip(keys, row, strict=True))
