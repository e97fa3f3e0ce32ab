"""Offline check-in against what the gateway knows: the member's cached appointments.

The cloud's rules (docs/member-services.md, ``appointment.checkin``) applied to the profile
the member cache holds: the appointment must be one of the member's, in this store, not
cancelled nor checked in, and check-in opens an hour before it starts. With nothing cached
the gateway cannot judge and accepts it ``unverified``; the cloud decides on reconnect.
A profile lists only appointments that were booked when it was cached: one booked since is
refused here as ``not_found``, the same answer the till gets for a mistyped id.

An appointment booked online from a campaign names it (``campaign_id``, served with the
cached appointment); the check-in carries it to its ``appointment.checked_in`` event, online
and offline alike, so head office can tell which campaign brought the member in.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from pydantic import JsonValue

from core.events import JsonObject
from gateway.counter.errors import CounterError

CHECKIN_OPENS = timedelta(minutes=60)
"""How long before an appointment check-in opens, as the cloud rules it."""


def _refused(code: str, message: str, details: JsonValue = None) -> CounterError:
    return CounterError(code, message, mode="offline", details=details)


def cached_appointments(profile: JsonObject | None) -> list[JsonObject] | None:
    """The appointments of a cached profile; None when nothing usable is cached."""
    if profile is None:
        return None
    raw = profile.get("appointments")
    if not isinstance(raw, list):
        return None
    return [a for a in raw if isinstance(a, dict)]


def campaign_of(profile: JsonObject | None, appointment_id: str) -> str | None:
    """The campaign the cached appointment was booked from; None when not known here."""
    for appointment in cached_appointments(profile) or ():
        if appointment.get("appointment_id") == appointment_id:
            campaign = appointment.get("campaign_id")
            return campaign if isinstance(campaign, str) and campaign else None
    return None


def check_offline(
    appointments: list[JsonObject],
    appointment_id: str,
    *,
    store_id: str,
    now: datetime,
    checked_in_here: Collection[str] = (),
) -> None:
    """Raise the refusal the cloud would give, judged from ``appointments``; ``checked_in_here``
    are appointment ids this gateway already accepted a check-in for."""
    found = next((a for a in appointments if a.get("appointment_id") == appointment_id), None)
    if found is None:
        raise _refused("not_found", "no such appointment for this member (cached profile)")
    if found.get("store_id") != store_id:
        raise _refused("wrong_store", "the appointment is in another store")
    status = found.get("status")
    if status == "cancelled":
        raise _refused("cancelled", "the appointment was cancelled")
    if status == "checked_in" or appointment_id in checked_in_here:
        raise _refused("already_checked_in", "the appointment is already checked in")
    starts = found.get("starts_at")
    try:
        starts_at = datetime.fromisoformat(str(starts))
    except ValueError:
        return  # a profile the cloud wrote badly: the cloud decides
    if starts_at.tzinfo is not None and now < starts_at - CHECKIN_OPENS:
        raise _refused(
            "too_early", "check-in opens an hour before the appointment", {"starts_at": starts}
        )
