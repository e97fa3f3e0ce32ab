"""The demo's scenes, in the order it tells them: a sale at the counter, the shelf labels, an
outage and its replay, a flash sale (each scene in a ``scene_*`` module)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools

from gateway.daemon import Gateway
from simulators import tasks
from simulators.cloud import CloudService, seed
from simulators.demo.narration import say
from simulators.demo.scene_counter import at_the_counter
from simulators.demo.scene_outage import outage_and_replay
from simulators.demo.scene_shelf import flash_sale, product_scans, shelf
from simulators.demo.store import DemoBroker, StopRequest, wait_until
from simulators.demo.till import Till, present_cards
from simulators.scanner import PtyScanner


async def run_store(
    gateway: Gateway,
    *,
    stop: StopRequest,
    cloud: CloudService,
    broker: DemoBroker,
    scanner: PtyScanner,
    smartcard: bool,
    till: Till,
    island: tuple[Gateway, Till],
    outage: bool,
    duration: float,
) -> None:
    async with asyncio.TaskGroup() as tg:
        gateway_task = tg.create_task(gateway.run(), name="gateway")
        island_task = tg.create_task(island[0].run(), name="island")
        helpers: list[asyncio.Task[None]] = []
        story = _Story(
            gateway=gateway,
            cloud=cloud,
            broker=broker,
            scanner=scanner,
            smartcard=smartcard,
            till=till,
            island=island,
            tg=tg,
            helpers=helpers,
        )
        scenes = tg.create_task(story.tell(outage, duration, stop), name="scenes")
        # From here a signal ends the scenes rather than cancelling this task: a cancel that
        # lands as an awaited reply arrives is dropped by Python 3.11's wait_for (aiomqtt's
        # publish uses it), and the demo would run on. Stopping a task re-cancels until done.
        stop.cancel_task = False
        await stop.event.wait()
        await tasks.stop(scenes)
        for task in helpers:
            await tasks.stop(task)
        island_task.cancel()
        gateway_task.cancel()


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Story:
    """What the demo narrates, in order; helper tasks it starts go into ``helpers``."""

    gateway: Gateway
    cloud: CloudService
    broker: DemoBroker
    scanner: PtyScanner
    smartcard: bool
    till: Till
    island: tuple[Gateway, Till]
    """The second till island: its gateway and till-3's POS."""
    tg: asyncio.TaskGroup
    helpers: list[asyncio.Task[None]]

    async def tell(self, outage: bool, duration: float, stop: StopRequest) -> None:
        from simulators.phone import Phone

        gateway, cloud, scanner, till = self.gateway, self.cloud, self.scanner, self.till
        await gateway.ready.wait()
        for gw in (gateway, self.island[0]):
            await wait_until(gw.bridge.connected.is_set, 10)
            await wait_until(functools.partial(_has_keys, gw), 10)
        say("events flowing live (devices -> outbox -> MQTT -> cloud)")
        await wait_until(lambda: gateway.devices["till-1-scanner"].health.state == "available", 10)
        if self.smartcard:
            self.helpers.append(self.tg.create_task(present_cards(gateway), name="cards"))
        await shelf(cloud, gateway)
        phone = await Phone.enroll(cloud, seed.ALICE, refresh_s=2.0)
        await at_the_counter(cloud, scanner, till, phone)
        self.helpers.append(self.tg.create_task(product_scans(scanner), name="scans"))
        await asyncio.sleep(3)
        if outage:
            await outage_and_replay(self.broker, gateway, cloud, till, phone, till3=self.island[1])
        await flash_sale(cloud)
        say("running; Ctrl-C to stop" if not duration else f"running for {duration:.0f}s more")
        if duration:
            await asyncio.sleep(duration)
            stop.event.set()


def _has_keys(gateway: Gateway) -> bool:
    return len(gateway.counter.keys.keyset) > 0 if gateway.counter else True
