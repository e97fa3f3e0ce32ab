"""Delivery proof: an OEPL upload is reported ``delivered`` only once the tag's record on the AP
shows it took the image; a sleeping tag is ``queued_at_ap`` after the timeout (and ``delivered``
later when it wakes); an upload the AP refuses for good is ``failed``."""

from __future__ import annotations

from pathlib import Path

from core.events import Action
from drivers.label.backend import LabelHealth
from drivers.label.config import LabelConfig
from drivers.label.delivery import Deliveries, Watch, taken
from drivers.label.driver import LabelDriver
from simulators.oepl import OeplSimulator
from tests.support.labels import running
from tests.support.waiting import wait_for

MAC = "0000021EDE3AB43C"
MILK = {"name": "Whole Milk 1 l", "price": "1.49"}


def config(url: str, **kw: object) -> LabelConfig:
    data: dict[str, object] = {
        "id": "esl-ap",
        "backend": "oepl",
        "url": url,
        "labels": [{"id": MAC}],
        "retry_min_s": 0.02,
        "retry_max_s": 0.05,
        "poll_interval_s": 0,
        "delivery_poll_s": 0.05,
        "delivery_timeout_s": 0.5,
        "ap_retries": 0,
    }
    data.update(kw)
    return LabelConfig.model_validate(data)


def show(product: dict[str, str] = MILK) -> Action:
    return Action(name="label.show", args={"label": MAC, "product": product})


async def test_delivered_only_after_the_tag_took_it(tmp_path: Path) -> None:
    async with OeplSimulator() as ap:
        tag = ap.add_tag(MAC, checkin_s=0.4)  # checks in 0.4 s after the upload
        driver = LabelDriver(config(ap.url), data_dir=tmp_path)
        async with running(driver) as events:
            pushed = (await driver.perform(show()))["push_id"]
            await wait_for(lambda: events.push("uploaded"), message="uploaded")
            assert events.push("delivered") == []  # the AP has it, the tag does not yet
            assert tag.pending == 1
            await wait_for(lambda: events.push("delivered"), message="delivered")
        [done] = events.push("delivered")
        assert done["push_id"] == pushed
        assert done["late"] is False
        assert 0.35 <= done["delivery_s"] < 0.5 + 1.0
        assert done["pending"] == 0
        assert tag.update_count == 1
        assert tag.taken == tag.uploads
        assert events.statuses() == ["uploaded", "delivered"]


async def test_a_sleeping_tag_is_queued_at_ap_then_delivered_when_it_wakes(
    tmp_path: Path,
) -> None:
    async with OeplSimulator() as ap:
        tag = ap.add_tag(MAC, checkin_s=None)  # asleep
        driver = LabelDriver(config(ap.url), data_dir=tmp_path)
        async with running(driver) as events:
            await driver.perform(show())
            await wait_for(lambda: events.push("queued_at_ap"), message="queued_at_ap")
            [queued] = events.push("queued_at_ap")
            assert queued["pending"] == 1
            assert queued["delivery_s"] >= 0.5
            assert queued["error"]["reason"] == "queued_at_ap"
            assert driver.health()["awaiting_tag"] == 1
            tag.check_in()
            await wait_for(lambda: events.push("delivered"), message="delivered after waking")
            [late] = events.push("delivered")
            assert late["late"] is True
            assert late["push_id"] == queued["push_id"]
            assert driver.health()["awaiting_tag"] == 0
        assert events.statuses() == ["uploaded", "queued_at_ap", "delivered"]


async def test_the_same_image_again_is_delivered_though_the_ap_queues_nothing(
    tmp_path: Path,
) -> None:
    async with OeplSimulator() as ap:
        tag = ap.add_tag(MAC)
        driver = LabelDriver(config(ap.url), data_dir=tmp_path)
        async with running(driver) as events:
            await driver.perform(show())
            await wait_for(lambda: len(events.push("delivered")) == 1)
            await driver.perform(show())  # e.g. a forced re-sync: identical image
            await wait_for(lambda: len(events.push("delivered")) == 2, message="second")
        assert len(tag.uploads) == 2
        assert tag.update_count == 1  # the AP did not send it to the tag again
        assert events.push("queued_at_ap") == []


async def test_an_upload_refused_for_good_is_failed(tmp_path: Path) -> None:
    async with OeplSimulator() as ap:
        ap.add_tag(MAC)
        ap.fail_tag(MAC, times=None, status=500)
        driver = LabelDriver(config(ap.url, max_attempts=2), data_dir=tmp_path)
        async with running(driver) as events:
            await driver.perform(show())
            await wait_for(lambda: events.push("failed"), message="failed")
        assert events.statuses() == ["retry", "failed"]
        [failed] = events.push("failed")
        assert failed["error"]["reason"] == "http_500"
        assert 0 < failed["latency_s"] < 30  # how long the store waited for nothing


def test_taken_reads_the_record_like_the_firmware_writes_it() -> None:
    before = LabelHealth(label=MAC, pending=0, update_count=3, content_hash="aa" * 16)
    queued = before.model_copy(update={"pending": 1})
    took = before.model_copy(update={"pending": 0, "update_count": 4, "content_hash": "bb" * 16})
    newer_waiting = took.model_copy(update={"pending": 1})
    assert not taken(before, queued, same_as_shown=False)
    assert taken(before, took, same_as_shown=False)
    assert not taken(before, newer_waiting, same_as_shown=False)  # another image still pending
    assert not taken(before, before, same_as_shown=False)
    assert taken(before, before, same_as_shown=True)
    old_fw = LabelHealth(label=MAC, pending=0, content_hash="aa" * 16)
    assert taken(old_fw, old_fw.model_copy(update={"content_hash": "cc" * 16}), same_as_shown=False)


def test_a_newer_upload_supersedes_the_watched_one() -> None:
    deliveries = Deliveries(timeout_s=10)
    base = LabelHealth(label=MAC, pending=0, update_count=0)
    first = Watch(MAC, "p1", 0.0, 1.0, 1, base)
    assert deliveries.add(first) is None
    assert deliveries.add(Watch(MAC, "p2", 0.0, 2.0, 1, base)) is first
    [outcome] = deliveries.check({MAC: base.model_copy(update={"update_count": 1})}, 3.0)
    assert (outcome.status, outcome.watch.push_id) == ("delivered", "p2")
