"""The gateway daemon: devices -> outbox -> uplink, commands back through one dispatcher.

Every background loop runs in one TaskGroup with a name. Shutdown stops the devices first
(nothing new arrives), lets the bridge say goodbye, then commits whatever is pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import JsonValue

from core.datafiles import make_private_dir
from core.events import Action, JsonObject, Priority, Reading
from gateway import __version__, systemd
from gateway.availability import Availability
from gateway.bridge import Bridge, UplinkFactory
from gateway.certwatch import CertWatch
from gateway.commandlog import CommandLog, CommandLogFeature
from gateway.commands import (
    Command,
    CommandCode,
    CommandError,
    Dispatcher,
    JsonResult,
    NoArgs,
)
from gateway.config import Config
from gateway.control import SOCKET_NAME, ControlServer, DeviceTests
from gateway.counter.service import CounterService
from gateway.delivery.feature import Delivery
from gateway.feature import Feature, ReadingListener, attach
from gateway.fleet import DeviceFleet
from gateway.member_services import member_services
from gateway.metrics import Metrics, serve_metrics
from gateway.outbox import Outbox, OutboxError, Statement, StoredEvent
from gateway.pricing import PricingService
from gateway.pricing.features import Labels, Prices
from gateway.remoteconfig import RemoteConfig
from gateway.status import PingArgs, PingResult, StatusResult
from gateway.supervisor import DeviceSupervisor
from gateway.wire.topics import Topics

if TYPE_CHECKING:
    from gateway.api.app import ApiServer
    from gateway.kiosk.service import KioskService
    from gateway.storeledger.feature import StoreLedger

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 4.0


class Gateway:
    """One store gateway. Construct, then ``await gateway.run()``; cancel it to stop."""

    def __init__(
        self,
        config: Config,
        *,
        metrics: Metrics | None = None,
        uplink_factory: UplinkFactory | None = None,
        config_path: Path | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        """The file ``config.set`` rewrites; None: started from a Config alone (refused)."""
        self.metrics = metrics or Metrics()
        g = config.gateway
        self.topics = Topics(config.mqtt.topic_prefix, g.store_id, g.gateway_id)
        self.outbox = Outbox(
            g.data_dir / "outbox.db",
            store_id=g.store_id,
            gateway_id=g.gateway_id,
            durability=config.outbox.durability,
            max_bytes=config.outbox.max_bytes,
            high_priority_reserve=config.outbox.high_priority_reserve,
            max_age_s=config.outbox.max_age_s,
            commit_interval_ms=config.outbox.commit_interval_ms,
        )
        self.metrics.watch_outbox(lambda: self.outbox.counters)
        self.command_log = CommandLog(g.data_dir / "commands.db", config.commands)
        """Command ids already run, and the expiry rule (refuses late or repeated commands)."""
        self.dispatcher = Dispatcher(self.command_log)
        self.bridge = Bridge(
            config.mqtt,
            self.topics,
            self.outbox,
            self.dispatcher,
            self.metrics,
            uplink_factory=uplink_factory,
        )
        self.delivery = Delivery(config.delivery, self.topics, self.outbox)
        """The pump's gate: when events go out, when a PUBACKed row may be deleted."""
        self.metrics.watch_delivery(self.delivery.figures)
        self.bridge.gate = self.delivery
        self.bridge.rpc.heed(lambda: self.delivery.state == "offline")
        """A cloud that said it is offline is not asked: till answers go offline at once."""
        self.certwatch = CertWatch.for_gateway(
            config,
            self.bridge.rpc,
            lambda r: self.accept("gateway", r),
            on_status=lambda status: self.metrics.cert_expires(status.not_after),
        )
        """Warns before the client certificate expires and renews it (None without one)."""
        self.availability = Availability(
            self.topics,
            self.bridge.publish_retained,
            lambda: self.bridge.session,
            g.data_dir / "availability.json",
            [d.id for d in config.devices],
        )
        supervise = functools.partial(
            DeviceSupervisor,
            accept=self._accept_quietly,
            data_dir=g.data_dir,
            retry_min_s=config.supervisor.retry_min_s,
            retry_max_s=config.supervisor.retry_max_s,
            on_state=self.availability.device_state,
        )
        self.fleet = DeviceFleet(config.devices, supervise, self._device_removed)
        self.devices = self.fleet.supervisors
        """The running devices by id (changed in place by ``config.set``)."""
        self.counter: CounterService | None = None
        self.store_ledger: StoreLedger | None = None
        self.api: ApiServer | None = None
        self.kiosks: KioskService | None = None
        self.pricing = PricingService(data_dir=g.data_dir, devices=self.devices, submit=self.accept)
        self.device_tests = DeviceTests(self.devices)
        self.features: list[Feature] = [*self._features(), self.device_tests]
        """Started in this order, inside the TaskGroup, after the control socket and bridge."""
        self.reading_listeners: list[ReadingListener] = []
        """Called with each device reading once it is durable; must not block."""
        for feature in self.features:
            attach(feature, self.dispatcher, self.bridge, self.reading_listeners)
        self.started = time.time()
        self.ready = asyncio.Event()
        self._register_commands()
        self.control = ControlServer(g.data_dir / SOCKET_NAME, self.dispatcher)
        """The local control socket: technicians reach the dispatcher without the cloud."""

    def _device_removed(self, device_id: str) -> None:
        self.availability.device_removed(device_id)
        self.metrics.forget_device(device_id)

    def _features(self) -> list[Feature]:
        config = self.config
        features: list[Feature] = [
            CommandLogFeature(self.command_log),
            self.availability,
            self.delivery,
            Prices(self.pricing),
            Labels(self.pricing),
        ]
        members = member_services(
            config,
            ledger_path=self.outbox.path,
            rpc=self.bridge.rpc,
            submit=self.submit,
            topics=self.topics,
            devices=self.devices,
            pricing=self.pricing,
            when_back=self.delivery.when_back,
        )
        self.counter, self.store_ledger = members.counter, members.store_ledger
        self.kiosks, self.api = members.kiosks, members.api
        features += members.features
        if self.certwatch is not None:
            features.append(self.certwatch)
        features.append(RemoteConfig(self.config_path, self))
        return features

    # --- the one way in for events --------------------------------------------------------

    async def accept(self, device_id: str, reading: Reading) -> StoredEvent | None:
        """Make a device's reading durable. Refusals are logged and counted, never raised
        into drivers (a scanner has nobody to tell); API callers use :meth:`submit`."""
        try:
            return await self.submit(device_id, reading)
        except OutboxError:
            return None

    async def _accept_quietly(self, device_id: str, reading: Reading) -> None:
        stored = await self.accept(device_id, reading)
        for listener in self.reading_listeners if stored is not None else ():
            try:
                listener(device_id, reading)
            except Exception:  # a listener bug must not reach the driver
                log.exception("reading listener failed", extra={"device_id": device_id})

    async def submit(
        self, device_id: str, reading: Reading, /, *, attached: Sequence[Statement] = ()
    ) -> StoredEvent:
        stored = await self.outbox.append(device_id, reading, attached=attached)  # counts refusals
        self.metrics.event_accepted(reading.kind)
        return stored

    # --- commands -------------------------------------------------------------------------

    def _register_commands(self) -> None:
        self.dispatcher.register(
            Command("ping", self._ping, PingArgs, PingResult, read_only=True),
            Command("status", self._status_cmd, NoArgs, StatusResult, read_only=True),
            Command("config.get", self._config_get, NoArgs, JsonResult, read_only=True),
        )
        self.dispatcher.set_fallback(self._device_action, self._device_actions)

    async def _ping(self, args: PingArgs) -> PingResult:
        out = PingResult(pong=True, ts=time.time())
        if args.echo is not None:
            out.echo = args.echo
        return out

    async def _status_cmd(self, _args: NoArgs) -> StatusResult:
        return StatusResult.model_validate(await self.status())

    async def _config_get(self, _args: NoArgs) -> JsonResult:
        return JsonResult(self.config.redacted())

    def _device_actions(self) -> frozenset[str]:
        return frozenset(a for sup in self.devices.values() for a in sup.actions())

    def _device_action(self, name: str, args: JsonObject) -> Awaitable[JsonObject] | None:
        if name not in self._device_actions():
            return None
        device_id = args.get("device")
        if not isinstance(device_id, str) or device_id not in self.devices:
            raise CommandError(
                CommandCode.BAD_ARGS,
                "args.device must name a configured device",
                details={"devices": list[JsonValue](sorted(self.devices))},
            )
        rest = {k: v for k, v in args.items() if k != "device"}
        return self.devices[device_id].perform(Action(name=name, args=rest))

    async def status(self) -> JsonObject:
        stats = await self.outbox.stats()
        out: JsonObject = {
            "version": __version__,
            "store_id": self.config.gateway.store_id,
            "gateway_id": self.config.gateway.gateway_id,
            "uptime_s": round(time.time() - self.started, 3),
            "mqtt": {
                "connected": self.bridge.connected.is_set(),
                "session": self.bridge.session,
                "since": self.bridge.connected_since,
                "last_error": self.bridge.last_error,
            },
            "outbox": stats.as_json(),
            "devices": [sup.health.as_json(sup.driver) for sup in self.devices.values()],
            "delivery": self.delivery.status(),
        }
        if self.counter is not None:
            out["counter"] = await self.counter.status()
        if self.store_ledger is not None:
            out["store_ledger"] = await self.store_ledger.status()
        return out

    # --- running --------------------------------------------------------------------------

    async def run(self) -> None:
        make_private_dir(self.config.gateway.data_dir)  # 0750: member data lives here
        async with self.outbox, contextlib.AsyncExitStack() as stack:
            for feature in self.features:
                await stack.enter_async_context(feature.lifespan())
            try:
                async with asyncio.TaskGroup() as tg:
                    # First: a second daemon on this data_dir is refused before it does anything.
                    tg.create_task(self.control.serve(), name="control")
                    await self.control.started.wait()
                    tg.create_task(self.bridge.run(), name="bridge")
                    for feature in self.features:
                        tg.create_task(feature.run(), name=feature.name)
                    if self.api is not None:
                        tg.create_task(self.api.serve(), name="api")
                        await self.api.started.wait()  # tills may call as soon as we are ready
                    self.fleet.start(tg)
                    tg.create_task(self._housekeeping(), name="housekeeping")
                    if self.config.metrics.listen:
                        tg.create_task(
                            serve_metrics(self.metrics, self.config.metrics.listen), name="metrics"
                        )
                    watchdog = systemd.watchdog_interval()
                    if watchdog:
                        tg.create_task(self._watchdog(watchdog), name="watchdog")
                    self.ready.set()
                    systemd.notify("READY=1\nSTATUS=running")
                    log.info(
                        "gateway running",
                        extra={"devices": len(self.devices), "version": __version__},
                    )
            finally:
                systemd.notify("STOPPING=1")

    async def _watchdog(self, interval: float) -> None:
        while True:
            systemd.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def _housekeeping(self) -> None:
        last_expiry = 0.0
        while True:
            stats = await self.outbox.stats()
            self.metrics.outbox_depth.set(stats.depth)
            self.metrics.outbox_bytes.set(stats.bytes)
            self.metrics.outbox_oldest.set(stats.oldest_age_s or 0)
            for sup in self.devices.values():
                self.metrics.device_up.labels(device=sup.config.id).set(
                    1 if sup.health.state == "available" else 0
                )
            if time.monotonic() - last_expiry > 60:
                last_expiry = time.monotonic()
                expired = await self.outbox.expire()
                if expired:
                    await self.accept(
                        "gateway",
                        Reading(
                            kind="outbox.expired",
                            priority=Priority.HIGH,
                            data={"expired": expired, "max_age_s": self.config.outbox.max_age_s},
                        ),
                    )
            await asyncio.sleep(2.0)


def _overdue() -> None:
    log.error("shutdown took longer than %.0fs; exiting now", SHUTDOWN_GRACE_S)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(1)


async def serve(
    config: Config,
    *,
    on_ready: Callable[[Gateway], None] | None = None,
    config_path: Path | None = None,
) -> None:
    """Run in the foreground until SIGTERM/SIGINT, then stop within the grace period."""
    gateway = Gateway(config, config_path=config_path)
    loop = asyncio.get_running_loop()
    main = asyncio.create_task(gateway.run(), name="gateway")
    stopping = False

    def _stop(signame: str) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            log.info("stopping", extra={"signal": signame})
            main.cancel()
            # A driver stuck in a library thread must not keep the process (and the till's
            # restart) waiting: everything accepted is already committed, so leaving is safe.
            loop.call_later(SHUTDOWN_GRACE_S, _overdue)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _stop, sig.name)
    if on_ready is not None:
        ready = asyncio.create_task(gateway.ready.wait())
        await asyncio.wait({ready, main}, return_when=asyncio.FIRST_COMPLETED)
        if gateway.ready.is_set():
            on_ready(gateway)
    try:
        await main
    except asyncio.CancelledError:
        if not stopping:
            raise
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
    log.info("stopped")
