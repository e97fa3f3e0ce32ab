"""Tap stickers at the cloud: each store's sticker keys (by key id, so rotation works), the last
NFC counter seen per tag UID (what refuses a replay), and every tap with its outcome.

The cloud issues a store's key (it is made here and leaves only in the key file the technician
installs on the box), or a technician registers a key a box already had. A retired key no
longer verifies; any key not retired does, so stickers written before a rotation keep working
until their key is retired. A real cloud keeps the secrets in a KMS; the simulator keeps them
in its database, which is why the database is the cloud's and never a box's.
"""

from __future__ import annotations

import hmac
import uuid
from datetime import datetime

from drivers.nfc.codec import StickerKey
from simulators.cloud.store.base import Json, Refusal, RefusalCode, StoreBase, iso


class StickerTables(StoreBase):
    async def issue_sticker_key(self, store_id: str, *, now: datetime) -> StickerKey:
        """A new key for the store, named ``k<n>`` (the store's n-th key)."""
        taken = {
            str(r[0])
            for r in await self.fetch_all(
                "SELECT key_id FROM sticker_keys WHERE store_id = ?", (store_id,)
            )
        }
        n = len(taken) + 1
        while f"k{n}" in taken:  # a registered key may have taken the name
            n += 1
        key = StickerKey.generate(f"k{n}")
        await self._store_key(store_id, key, "issued", now)
        return key

    async def register_sticker_key(self, store_id: str, key: StickerKey, *, now: datetime) -> bool:
        """Take a key a box already holds; False when it was registered already (same secret)."""
        row = await self.fetch_one(
            "SELECT secret FROM sticker_keys WHERE store_id = ? AND key_id = ?",
            (store_id, key.key_id),
        )
        if row is not None:
            if not hmac.compare_digest(str(row[0]), _secret_hex(key)):
                raise Refusal(RefusalCode.BAD_ARGS, f"key id {key.key_id} is another key's")
            return False
        await self._store_key(store_id, key, "registered", now)
        return True

    async def _store_key(self, store_id: str, key: StickerKey, origin: str, now: datetime) -> None:
        await self._write(
            "INSERT INTO sticker_keys VALUES (?, ?, ?, ?, ?, NULL)",
            (store_id, key.key_id, _secret_hex(key), origin, iso(now)),
        )

    async def retire_sticker_key(self, store_id: str, key_id: str, *, now: datetime) -> bool:
        changed = await self._write(
            "UPDATE sticker_keys SET retired_at = ? "
            "WHERE store_id = ? AND key_id = ? AND retired_at IS NULL",
            (iso(now), store_id, key_id),
        )
        return changed == 1

    async def sticker_key(self, store_id: str, key_id: str) -> StickerKey | None:
        """The store's key by id, unless unknown or retired."""
        row = await self.fetch_one(
            "SELECT secret FROM sticker_keys "
            "WHERE store_id = ? AND key_id = ? AND retired_at IS NULL",
            (store_id, key_id),
        )
        return None if row is None else StickerKey.from_hex(str(row[0]), key_id)

    async def sticker_keys(self, store_id: str) -> list[Json]:
        """The store's keys without their secrets."""
        rows = await self.fetch_all(
            "SELECT key_id, origin, created_at, retired_at FROM sticker_keys "
            "WHERE store_id = ? ORDER BY rowid",
            (store_id,),
        )
        keys = ("key_id", "origin", "created_at", "retired_at")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    async def advance_sticker_counter(self, uid: str, counter: int) -> bool:
        """Record ``counter`` for the tag if it is greater than the last seen; one statement,
        so two taps racing with the same URL cannot both pass."""
        changed = await self._write(
            "INSERT INTO sticker_counters VALUES (?, ?) ON CONFLICT(uid) DO UPDATE "
            "SET counter = excluded.counter WHERE excluded.counter > sticker_counters.counter",
            (uid, counter),
        )
        return changed == 1

    async def record_tap(
        self,
        *,
        store_id: str,
        placement: str,
        staff: str | None,
        key_id: str | None,
        uid: str | None,
        counter: int | None,
        kind: str,
        outcome: str,
        now: datetime,
    ) -> str:
        tap_id = f"tap-{uuid.uuid4().hex[:16]}"
        await self._write(
            "INSERT INTO sticker_taps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            (tap_id, store_id, placement, staff, key_id, uid, counter, kind, outcome, iso(now)),
        )
        return tap_id

    async def tap(self, tap_id: str) -> Json | None:
        row = await self.fetch_one(
            "SELECT tap_id, store_id, placement, staff, key_id, uid, counter, kind, outcome, at,"
            " join_id FROM sticker_taps WHERE tap_id = ?",
            (tap_id,),
        )
        if row is None:
            return None
        keys = (
            "tap_id",
            "store_id",
            "placement",
            "staff",
            "key_id",
            "uid",
            "counter",
            "kind",
            "outcome",
            "at",
            "join_id",
        )
        return dict(zip(keys, row, strict=True))

    async def taps(self, store_id: str | None = None) -> list[Json]:
        """Every tap (oldest first), for tests and the report."""
        where, params = ("WHERE store_id = ?", (store_id,)) if store_id else ("", ())
        rows = await self.fetch_all(
            f"SELECT tap_id FROM sticker_taps {where} ORDER BY rowid",  # noqa: S608
            params,
        )
        out = []
        for (tap_id,) in rows:
            found = await self.tap(str(tap_id))
            if found is not None:
                out.append(found)
        return out

    async def claim_tap_for_join(self, tap_id: str, join_id: str) -> bool:
        """Tie a verified tap to the join it led to, once."""
        changed = await self._write(
            "UPDATE sticker_taps SET join_id = ? "
            "WHERE tap_id = ? AND outcome = 'ok' AND join_id IS NULL",
            (join_id, tap_id),
        )
        return changed == 1


def _secret_hex(key: StickerKey) -> str:
    return key.file_text().strip().partition(":")[2]
