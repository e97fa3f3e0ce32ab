"""Service packages at the till: a session used online or once per visit offline, a check-in
of a booked appointment using it in the same operation, and a package found used up later."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.counter.asset_models import PackageAnswer, PackageUseRequest
from gateway.counter.errors import CounterError
from gateway.counter.request_models import CheckinRequest
from simulators.cloud import CloudService, seed
from tests.gateway.counter.test_wallet import API, identify, refused
from tests.support.counter import (
    cloud_events,
    offline,
    online_gateway,
    reconnected,
)
from tests.support.link import Link
from tests.support.waiting import eventually


def use(use_id: str, sessions: int = 1, till: str = "till-1", **extra: str) -> PackageUseRequest:
    return PackageUseRequest(
        till=till,
        use_id=use_id,
        package_id=extra.pop("package_id", seed.PACKAGE_FACIAL),
        sessions=sessions,
        **extra,
    )


async def package_left(cloud: CloudService, member_id: str, package_id: str) -> int:
    packages = await cloud.store.member_packages(member_id, now=cloud.clock())
    return next(p["left"] for p in packages if p["package_id"] == package_id)


async def test_online_sessions_are_used_once_and_a_check_in_uses_its_package(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    async with online_gateway(link, tmp_path / "gw") as (_gw, counter):
        assert (await refused(counter.use_package(use("U-0"), API))).code == "no_member"
        await identify(counter, "till-1")
        first = await counter.use_package(use("U-1", 2), API)
        assert (first.status, first.left, first.service) == ("confirmed", 1, "facial")
        assert await counter.use_package(use("U-1", 2), API) == first
        err = await refused(counter.use_package(use("U-2", 2), API))
        assert (err.code, err.details) == ("used_up", {"left": 1})
        err = await refused(counter.use_package(use("U-3", package_id=seed.PACKAGE_TRAINING), API))
        assert err.code == "not_found"  # Bruno's package
        await identify(counter, "till-2", seed.BRUNO)
        checked = await counter.checkin(
            CheckinRequest(till="till-2", appointment_id=seed.APPT_PACKAGE), API
        )
        assert checked.package is not None
        assert (checked.package["package_id"], checked.package["left"]) == (
            seed.PACKAGE_TRAINING,
            7,
        )
        used = await cloud_events(cloud, "package.used")
    assert await package_left(cloud, seed.ALICE, seed.PACKAGE_FACIAL) == 1
    assert await package_left(cloud, seed.BRUNO, seed.PACKAGE_TRAINING) == 7
    assert [(e["use_id"], e["sessions"], e["staff"]) for e in used] == [("U-1", 2, "S-7")]


async def test_offline_a_package_is_used_once_per_visit_whatever_the_tills_do(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    async with online_gateway(link, tmp_path / "gw") as (gw, counter):
        await identify(counter, "till-1")
        await identify(counter, "till-2")
        await offline(gw, link)
        err = await refused(counter.use_package(use("U-TWO", 2), API))
        assert (err.code, err.details) == ("over_offline_limit", {"available": 1})
        results = await asyncio.gather(
            *(counter.use_package(use(f"U-{i}", till=f"till-{1 + i % 2}"), API) for i in range(10)),
            return_exceptions=True,
        )
        accepted = [r for r in results if isinstance(r, PackageAnswer)]
        refusals = [r for r in results if isinstance(r, CounterError)]
        assert len(accepted) == 1, results
        assert (accepted[0].left, accepted[0].projected) == (2, True)
        assert {r.code for r in refusals} == {"already_used"}
        err = await refused(counter.use_package(use("U-X", package_id="PKG-NOPE"), API))
        assert err.code == "not_found"
        await reconnected(gw, link)
        await eventually(
            counter.store.counts,
            lambda c: c["package_uses"] == {"confirmed": 1},
            timeout=15,
            message="the offline use confirmed",
        )
        events = await cloud_events(cloud, "package.used")
    assert await package_left(cloud, seed.ALICE, seed.PACKAGE_FACIAL) == 2
    assert [e["use_id"] for e in events] == [accepted[0].use_id]


async def test_an_offline_check_in_counts_as_the_visit_and_a_package_used_up_is_a_conflict(
    link: Link, cloud: CloudService, tmp_path: Path
) -> None:
    async with online_gateway(link, tmp_path / "gw") as (gw, counter):
        await identify(counter, "till-1", seed.BRUNO)
        await offline(gw, link)
        checked = await counter.checkin(
            CheckinRequest(till="till-1", appointment_id=seed.APPT_PACKAGE), API
        )
        assert (checked.status, checked.offline_check) == ("pending", "verified")
        err = await refused(counter.use_package(use("U-B", package_id=seed.PACKAGE_TRAINING), API))
        assert err.code == "already_used"  # the check-in was this visit's session
        bruno = await cloud.store.member_packages(seed.BRUNO, now=cloud.clock())
        assert bruno[0]["left"] == 8
        await cloud.store.consume_package(  # meanwhile the app books and uses all eight
            use_id="APP-ALL",
            member_id=seed.BRUNO,
            package_id=seed.PACKAGE_TRAINING,
            sessions=8,
            where=("S002", "gw-9", None),
            offline_at=None,
            credential_id=None,
            now=cloud.clock(),
        )
        await reconnected(gw, link)
        conflicts = await eventually(
            counter.package_conflicts,
            lambda found: len(found) == 1,
            timeout=15,
            message="the used-up package found on reconciliation",
        )
        events = await cloud_events(cloud, "package.conflict")
        appointment = await cloud.appointment(seed.APPT_PACKAGE)
    assert (conflicts[0].package_id, conflicts[0].shortfall, conflicts[0].left) == (
        seed.PACKAGE_TRAINING,
        1,
        -1,
    )
    assert conflicts[0].appointment_id == seed.APPT_PACKAGE
    assert (events[0]["package_id"], events[0]["shortfall"]) == (seed.PACKAGE_TRAINING, 1)
    assert appointment["status"] == "checked_in"  # the member was served: the visit stands
