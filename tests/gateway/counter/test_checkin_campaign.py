"""An appointment booked online from a campaign: the profile the gateway caches names the
campaign, and the check-in's event carries it - online, and offline from the cache."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from gateway.counter.request_models import CheckinRequest
from simulators.cloud import CloudService, seed
from tests.gateway.counter.test_wallet import API, identify
from tests.support.counter import cloud_events, offline, online_gateway, reconnected
from tests.support.link import Link
from tests.support.waiting import eventually


async def test_the_check_in_event_names_the_campaign_online_and_offline(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    now = cloud.clock()
    for appointment_id, member_id in (("APT-C1", seed.ALICE), ("APT-C2", seed.BRUNO)):
        await cloud.add_appointment(
            appointment_id,
            member_id,
            "S001",
            now + timedelta(minutes=20),
            "eye test",
            channel="online",
            campaign_id="CMP-SPRING",
        )
        booked = await cloud.appointment(appointment_id)
        assert booked["campaign_id"] == "CMP-SPRING"  # served with the appointment
    async with online_gateway(link, tmp_path / "gw") as (gw, counter):
        await identify(counter, "till-1", seed.ALICE)
        await counter.checkin(CheckinRequest(till="till-1", appointment_id="APT-C1"), API)
        await counter.checkin(CheckinRequest(till="till-1", appointment_id=seed.APPT_SOON), API)
        # Bruno's campaign appointment offline: the campaign comes from his cached profile
        await identify(counter, "till-2", seed.BRUNO)
        await offline(gw, link)
        retry = CheckinRequest(till="till-2", appointment_id="APT-C2", checkin_id="CHK-OFF")
        accepted = await counter.checkin(retry, API)
        assert (accepted.mode, accepted.offline_check) == ("offline", "verified")
        again = await counter.checkin(retry, API)  # a retry: the same operation, not refused
        assert (again.checkin_id, again.status) == ("CHK-OFF", "pending")
        await reconnected(gw, link)
        events = await cloud_events(cloud, "appointment.checked_in", 3)
        await eventually(
            lambda: cloud.appointment("APT-C2"),
            lambda a: a["status"] == "checked_in",
            timeout=10,
            message="the offline check-in reconciled",
        )
    campaigns = {e["appointment_id"]: e.get("campaign_id") for e in events}
    assert campaigns == {"APT-C1": "CMP-SPRING", seed.APPT_SOON: None, "APT-C2": "CMP-SPRING"}
    offline_event = next(e for e in events if e["appointment_id"] == "APT-C2")
    assert "offline_at" in offline_event
