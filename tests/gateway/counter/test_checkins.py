"""Offline check-in judged from the member's cached appointments (gateway/counter/checkins.py),
with the cloud's rules: exists for the member, this store, not cancelled or used, the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.events import JsonObject
from gateway.counter.checkins import cached_appointments, check_offline
from gateway.counter.errors import CounterError

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def appt(
    appointment_id: str, *, store: str = "S001", starts_in: timedelta, **extra: str
) -> JsonObject:
    return {
        "appointment_id": appointment_id,
        "member_id": "M1",
        "store_id": store,
        "starts_at": (NOW + starts_in).isoformat().replace("+00:00", "Z"),
        "service": "eye test",
        "status": extra.get("status", "booked"),
    }


BOOK = [
    appt("A-SOON", starts_in=timedelta(minutes=30)),
    appt("A-EDGE", starts_in=timedelta(minutes=60)),
    appt("A-LATER", starts_in=timedelta(hours=5)),
    appt("A-ELSEWHERE", store="S002", starts_in=timedelta(minutes=10)),
    appt("A-CANCELLED", starts_in=timedelta(minutes=10), status="cancelled"),
    appt("A-DONE", starts_in=timedelta(minutes=-10), status="checked_in"),
    appt("A-STARTED", starts_in=timedelta(hours=-2)),
]


def code_for(appointment_id: str, checked_in_here: set[str] | None = None) -> str | None:
    """The refusal's code (every refusal here is the gateway's own: mode offline), or None."""
    try:
        check_offline(
            BOOK, appointment_id, store_id="S001", now=NOW, checked_in_here=checked_in_here or set()
        )
    except CounterError as exc:
        return exc.code if exc.mode == "offline" else f"{exc.code} (mode {exc.mode})"
    return None


@pytest.mark.parametrize(
    ("appointment_id", "expected"),
    [
        ("A-SOON", None),
        ("A-EDGE", None),  # opens exactly an hour before
        ("A-STARTED", None),  # the cloud has no "too late" rule
        ("APT-NOPE", "not_found"),
        ("A-LATER", "too_early"),
        ("A-ELSEWHERE", "wrong_store"),
        ("A-CANCELLED", "cancelled"),
        ("A-DONE", "already_checked_in"),
    ],
)
def test_the_cloud_rules_from_the_cached_profile(appointment_id: str, expected: str | None) -> None:
    assert code_for(appointment_id) == expected


def test_a_check_in_this_gateway_accepted_counts_as_used() -> None:
    assert code_for("A-SOON", {"A-SOON"}) == "already_checked_in"


def test_too_early_names_the_start() -> None:
    with pytest.raises(CounterError) as err:
        check_offline(BOOK, "A-LATER", store_id="S001", now=NOW)
    assert err.value.details == {"starts_at": BOOK[2]["starts_at"]}


def test_nothing_cached_means_nothing_to_judge_by() -> None:
    assert cached_appointments(None) is None
    assert cached_appointments({"member_id": "M1"}) is None  # a profile without appointments
    assert cached_appointments({"member_id": "M1", "appointments": []}) == []
    assert cached_appointments({"appointments": [BOOK[0], "junk"]}) == [BOOK[0]]
