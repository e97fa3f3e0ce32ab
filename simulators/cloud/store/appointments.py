"""Appointments and the check-ins that open an hour before them.

An appointment may say how it was booked (``channel``: ``online`` in the app or on a campaign
page, ``store`` at the counter) and the campaign it was booked from (``campaign_id``): the
member's profile serves the campaign with the appointment, so the gateway's check-in event
carries it (head office's attribution, :mod:`simulators.cloud.reports`)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from simulators.cloud import seed
from simulators.cloud.store.base import Json, Refusal, RefusalCode, StoreBase, iso, parse_time


class AppointmentTables(StoreBase):
    async def current_appointments(self, member_id: str, *, now: datetime) -> list[Json]:
        """Up to ten not cancelled, from twelve hours ago on, soonest first."""
        since = iso(now - timedelta(hours=12))
        rows = await self.fetch_all(
            "SELECT appointment_id FROM appointments WHERE member_id = ? AND status != "
            "'cancelled' AND starts_at >= ? ORDER BY starts_at LIMIT 10",
            (member_id, since),
        )
        return [await self.appointment(r[0]) for r in rows]

    async def add_appointment(
        self,
        appointment_id: str,
        member_id: str,
        store_id: str,
        starts_at: datetime,
        service: str,
        *,
        status: str = "booked",
        channel: str | None = None,
        campaign_id: str | None = None,
        booked_at: datetime | None = None,
        commit: bool = True,
    ) -> None:
        """``channel`` (``online``, ``store``) and ``campaign_id``: how it was booked, for
        attribution; ``booked_at`` defaults to ``starts_at`` when only they are given."""
        await self._write(
            "INSERT INTO appointments (appointment_id, member_id, store_id, starts_at, service, "
            "status) VALUES (?, ?, ?, ?, ?, ?)",
            (appointment_id, member_id, store_id, iso(starts_at), service, status),
            commit=False,
        )
        if channel is not None or campaign_id is not None:
            await self.db.execute(
                "INSERT OR REPLACE INTO appointment_bookings VALUES (?, ?, ?, ?)",
                (appointment_id, channel or "online", campaign_id, iso(booked_at or starts_at)),
            )
        if commit:
            await self.db.commit()

    async def appointment(self, appointment_id: str) -> Json:
        row = await self.fetch_one(
            "SELECT appointment_id, member_id, store_id, starts_at, service, status "
            "FROM appointments WHERE appointment_id = ?",
            (appointment_id,),
        )
        if row is None:
            raise Refusal(RefusalCode.NOT_FOUND, "no such appointment")
        keys = ("appointment_id", "member_id", "store_id", "starts_at", "service", "status")
        out: Json = dict(zip(keys, row, strict=True))
        package = await self.fetch_one(
            "SELECT package_id FROM appointment_packages WHERE appointment_id = ?",
            (appointment_id,),
        )
        if package is not None:
            out["package_id"] = package[0]
        booking = await self.fetch_one(
            "SELECT campaign_id FROM appointment_bookings WHERE appointment_id = ?",
            (appointment_id,),
        )
        if booking is not None and booking[0] is not None:
            out["campaign_id"] = booking[0]
        return out

    async def on_checkin(
        self,
        appointment: Json,
        checkin_id: str,
        *,
        store_id: str,
        offline_at: datetime | None,
        now: datetime,
    ) -> Json:
        """More of the check-in, in its transaction (a package session): extra reply data;
        raises Refusal to refuse the check-in before anything is written."""
        return {}

    async def checkin(
        self,
        *,
        checkin_id: str,
        appointment_id: str,
        member_id: str | None,
        store_id: str,
        now: datetime,
        offline_at: datetime | None = None,
    ) -> Json:
        """Check in once; the same ``checkin_id`` gets the same answer. ``offline_at``: the
        gateway accepted it offline (a package it uses is used even if used up by now)."""
        row = await self.fetch_one(
            "SELECT appointment_id, reply FROM checkins WHERE checkin_id = ?", (checkin_id,)
        )
        if row is not None:
            if row[0] != appointment_id:
                raise Refusal(RefusalCode.BAD_ARGS, "checkin_id was used for another appointment")
            return dict(json.loads(row[1]))
        appt = await self.appointment(appointment_id)
        if member_id is not None and appt["member_id"] != member_id:
            raise Refusal(RefusalCode.NOT_FOUND, "no such appointment for this member")
        if appt["store_id"] != store_id:
            raise Refusal(RefusalCode.WRONG_STORE, "the appointment is in another store")
        if appt["status"] == "cancelled":
            raise Refusal(RefusalCode.CANCELLED, "the appointment was cancelled")
        if appt["status"] == "checked_in":
            raise Refusal(RefusalCode.ALREADY_CHECKED_IN, "the appointment is already checked in")
        if now < parse_time(appt["starts_at"]) - seed.CHECKIN_OPENS:
            raise Refusal(
                RefusalCode.TOO_EARLY,
                "check-in opens an hour before the appointment",
                {"starts_at": appt["starts_at"]},
            )
        extra = await self.on_checkin(
            appt, checkin_id, store_id=store_id, offline_at=offline_at, now=now
        )
        await self.db.execute(
            "UPDATE appointments SET status = 'checked_in', checkin_id = ?, checked_in_at = ? "
            "WHERE appointment_id = ?",
            (checkin_id, iso(now), appointment_id),
        )
        appt["status"] = "checked_in"
        reply = {"ok": True, "data": {"appointment": appt, **extra}}
        await self.db.execute(
            "INSERT INTO checkins VALUES (?, ?, ?, ?)",
            (checkin_id, appointment_id, iso(now), json.dumps(reply)),
        )
        await self.db.commit()
        return reply
