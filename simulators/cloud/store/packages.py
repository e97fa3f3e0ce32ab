"""Service packages (次卡): sessions a member bought, used at the till or by checking in an
appointment booked against the package. Each use is keyed by the gateway's id and stores its
answer; a use made offline (``offline_at``) is applied even when the package is used up by
then (the service was given) and names the shortfall."""

from __future__ import annotations

import json
from datetime import datetime

from simulators.cloud.store.base import Json, Refusal, RefusalCode, iso, made, parse_time
from simulators.cloud.store.points import PointsTables


class PackageTables(PointsTables):
    async def add_package(
        self,
        package_id: str,
        member_id: str,
        service: str,
        total: int,
        *,
        used: int = 0,
        expires: datetime,
        commit: bool = True,
    ) -> None:
        await self._write(
            "INSERT INTO packages VALUES (?, ?, ?, ?, ?, ?)",
            (package_id, member_id, service, total, used, iso(expires)),
            commit=commit,
        )

    async def book_against(
        self, appointment_id: str, package_id: str, *, commit: bool = True
    ) -> None:
        await self._write(
            "INSERT OR REPLACE INTO appointment_packages VALUES (?, ?)",
            (appointment_id, package_id),
            commit=commit,
        )

    async def member_packages(self, member_id: str, *, now: datetime) -> list[Json]:
        """The member's packages that have not expired, used up or not."""
        rows = await self.fetch_all(
            "SELECT package_id, service, total, used, expires FROM packages "
            "WHERE member_id = ? AND expires > ? ORDER BY package_id",
            (member_id, iso(now)),
        )
        return [
            {
                "package_id": r[0],
                "service": r[1],
                "total": r[2],
                "left": r[2] - r[3],
                "expires": r[4],
            }
            for r in rows
        ]

    async def appointment_package(self, appointment_id: str) -> str | None:
        row = await self.fetch_one(
            "SELECT package_id FROM appointment_packages WHERE appointment_id = ?",
            (appointment_id,),
        )
        return None if row is None else str(row[0])

    async def on_checkin(
        self,
        appointment: Json,
        checkin_id: str,
        *,
        store_id: str,
        offline_at: datetime | None,
        now: datetime,
    ) -> Json:
        """An appointment booked against a package uses one session as it is checked in."""
        package_id = appointment.get("package_id")
        if package_id is None:
            return {}
        used = await self.consume_package(
            use_id=f"checkin:{checkin_id}",
            member_id=appointment["member_id"],
            package_id=package_id,
            sessions=1,
            where=(store_id, "", None),
            offline_at=offline_at,
            credential_id=None,
            now=now,
            appointment_id=appointment["appointment_id"],
            commit=False,
        )
        return {"package": used["data"]}

    async def consume_package(
        self,
        *,
        use_id: str,
        member_id: str,
        package_id: str,
        sessions: int,
        where: tuple[str, str, str | None],
        offline_at: datetime | None,
        credential_id: str | None,
        now: datetime,
        appointment_id: str | None = None,
        commit: bool = True,
    ) -> Json:
        """Use ``sessions`` of the package: online a package without them is ``used_up``."""
        row = await self.fetch_one(
            "SELECT package_id, member_id, sessions, reply FROM package_uses WHERE use_id = ?",
            (use_id,),
        )
        if row is not None:
            if (row[0], row[1], row[2]) != (package_id, member_id, sessions):
                raise Refusal(RefusalCode.BAD_ARGS, "use_id was used for another package use")
            return dict(json.loads(row[3]))
        pkg = await self.fetch_one(
            "SELECT member_id, service, total, used, expires FROM packages WHERE package_id = ?",
            (package_id,),
        )
        if pkg is None or pkg[0] != member_id:
            raise Refusal(RefusalCode.NOT_FOUND, "no such package for this member")
        service, total, used, expires = str(pkg[1]), int(pkg[2]), int(pkg[3]), str(pkg[4])
        when = offline_at or now
        if when >= parse_time(expires):
            raise Refusal(RefusalCode.EXPIRED, "the package has expired", {"expires": expires})
        left = total - used
        if offline_at is None and left < sessions:
            raise Refusal(RefusalCode.USED_UP, "the package has no sessions left", {"left": left})
        if offline_at is not None and appointment_id is None:
            await self._check_credential(credential_id, member_id)
        after = left - sessions
        data: Json = {
            "use_id": use_id,
            "package_id": package_id,
            "service": service,
            "sessions": sessions,
            "left": after,
        }
        if after < 0:
            data["shortfall"] = min(sessions, -after)
        reply: Json = {"ok": True, "data": data}
        await self.db.execute(
            "UPDATE packages SET used = used + ? WHERE package_id = ?", (sessions, package_id)
        )
        await self.db.execute(
            "INSERT INTO package_uses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                use_id,
                package_id,
                member_id,
                sessions,
                appointment_id,
                *made(where, now, offline_at, credential_id, reply),
            ),
        )
        if commit:
            await self.db.commit()
        return reply
