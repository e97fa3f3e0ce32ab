"""``storegw demo``: a whole simulated store on one machine, narrated in the terminal.

A broker (Mosquitto, or amqtt in-process where Mosquitto is missing), the cloud listener,
the gateway and simulated devices. Scans flow live; then the broker is stopped, scans keep
being accepted into the outbox, the broker comes back and the backlog replays. Ctrl-C ends it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from pathlib import Path
from typing import Any

from rich.console import Console

from gateway import logs
from gateway.config import Config, parse_config
from gateway.daemon import Gateway
from simulators.broker import EmbeddedBroker, MosquittoBroker, find_mosquitto
from simulators.cloud import CloudListener
from simulators.scanner import BUILTIN_CODES, GARBAGE, PtyScanner

console = Console(highlight=False, soft_wrap=True)


def say(text: str, style: str = "bold cyan") -> None:
    console.print(f"[{style}]== {text}[/]")


def _config(broker_url: str, data_dir: Path, scanner_port: str, protocol: str) -> Config:
    return parse_config(
        {
            "gateway": {"store_id": "DEMO1", "gateway_id": "gw-1", "data_dir": str(data_dir)},
            "mqtt": {
                "url": broker_url,
                "protocol": protocol,
                "keepalive_s": 5,
                "reconnect_min_s": 0.2,
                "reconnect_max_s": 2.0,
            },
            "supervisor": {"retry_min_s": 0.5, "retry_max_s": 3.0},
            "devices": [
                {
                    "id": "till-1-scanner",
                    "kind": "scanner",
                    "port": scanner_port,
                    "terminator": "CR",
                    "aim_prefix": True,
                },
            ],
        }
    )


def _summarise(kind: str, data: dict[str, Any]) -> str:
    if kind == "scan":
        code = str(data.get("code", "")).replace("\x1d", "<GS>")
        code = code if len(code) <= 48 else code[:45] + "..."
        return f"{code}  [dim]{data.get('symbology') or ''}[/]"
    if kind == "error":
        return f"[red]{data.get('reason')}[/]: {data.get('message')}"
    text = json.dumps(data, ensure_ascii=False)
    return text if len(text) <= 70 else text[:67] + "..."


def _show(event: dict[str, Any], duplicate: bool) -> None:
    tag = " [yellow]replayed[/]" if event.get("replayed") else ""
    dup = " [red]duplicate[/]" if duplicate else ""
    console.print(
        f"  [green]cloud <-[/] #{event['seq']:<4} {event['device_id']:<15} "
        f"[bold]{event['kind']:<13}[/] {_summarise(event['kind'], event.get('data') or {})}"
        f"{tag}{dup}",
        soft_wrap=True,
    )


class _Broker:
    """Mosquitto when installed, else amqtt in-process; both can be stopped and restarted."""

    def __init__(self) -> None:
        self.mosquitto = MosquittoBroker() if find_mosquitto() else None
        self.embedded = None if self.mosquitto else EmbeddedBroker()

    @property
    def url(self) -> str:
        return self.mosquitto.url if self.mosquitto else self.embedded.url  # type: ignore[union-attr]

    @property
    def protocol(self) -> str:
        return "5" if self.mosquitto else "3.1.1"

    async def start(self) -> None:
        if self.mosquitto:
            await asyncio.to_thread(self.mosquitto.start)
        elif self.embedded:
            await self.embedded.start()

    async def stop(self) -> None:
        if self.mosquitto:
            await asyncio.to_thread(self.mosquitto.stop)
        elif self.embedded:
            await self.embedded.stop()

    def cleanup(self) -> None:
        if self.mosquitto:
            self.mosquitto.__exit__(None, None, None)


async def _type_scans(scanner: Any, gateway: Gateway, interval: float) -> None:
    await _wait(lambda: gateway.devices["till-1-scanner"].health.state == "available", 10)
    for n in itertools.count():
        aim, code = BUILTIN_CODES[n % len(BUILTIN_CODES)]
        await asyncio.to_thread(scanner.type, aim + code)
        if n % 7 == 6:
            await asyncio.to_thread(scanner.type, GARBAGE[0])  # a misread: an error event
        await asyncio.sleep(interval)


async def _wait(cond: Any, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def run_demo(data_dir: Path, *, outage: bool = True, duration: float = 0.0) -> int:

    logs.setup("text", "WARNING")
    logging.getLogger("gateway").setLevel(logging.INFO)
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    broker = _Broker()
    say("starting a simulated store")
    await broker.start()
    kind = (
        "Mosquitto" if broker.mosquitto else "embedded amqtt (MQTT 3.1.1; install mosquitto for v5)"
    )
    console.print(f"  broker  : {broker.url} ({kind})")
    cloud = CloudListener(broker.url, on_event=_show, protocol=broker.protocol)
    with PtyScanner() as scanner:
        config = _config(broker.url, data_dir, scanner.path, broker.protocol)
        gateway = Gateway(config)
        console.print(f"  scanner : {scanner.path} (simulated, typing codes)")
        console.print(f"  gateway : store DEMO1 / gw-1, outbox {data_dir / 'outbox.db'}")
        try:
            async with asyncio.TaskGroup() as tg:
                background = [
                    tg.create_task(cloud.run(), name="cloud"),
                    tg.create_task(gateway.run(), name="gateway"),
                ]
                await gateway.ready.wait()
                await _wait(gateway.bridge.connected.is_set, 10)
                say("events flowing live (scans at the till -> outbox -> MQTT -> cloud)")
                background.append(
                    tg.create_task(_type_scans(scanner, gateway, 0.7), name="scanner")
                )
                await tg.create_task(_story(broker, gateway, outage, duration), name="story")
                for task in background:
                    task.cancel()
        finally:
            broker.cleanup()
            _summary(cloud)
    return 0


def _summary(cloud: CloudListener) -> None:
    stats = cloud.stats.as_json()
    gaps = sum(len(g) for g in stats["gaps"].values())
    say(
        f"cloud received {stats['unique']} unique events ({stats['duplicates']} duplicates "
        f"ignored, {stats['replayed']} replayed), seq gaps: {gaps}",
        "bold green",
    )


async def _story(broker: _Broker, gateway: Gateway, outage: bool, duration: float) -> None:
    await asyncio.sleep(6)
    if outage:
        say("OUTAGE: the store's internet drops (broker stopped)", "bold red")
        await broker.stop()
        for _ in range(8):
            await asyncio.sleep(1)
            stats = await gateway.outbox.stats()
            console.print(
                f"  [red]offline[/]: till keeps scanning; outbox holds {stats.depth} event(s), "
                f"oldest {stats.oldest_age_s or 0:.1f}s"
            )
        say("link restored (broker back): the backlog replays in order", "bold yellow")
        await broker.start()
        await _wait(lambda: gateway.outbox._depth == 0, 20)
        stats = await gateway.outbox.stats()
        console.print(f"  outbox drained: depth {stats.depth}")
    say("running; Ctrl-C to stop" if not duration else f"running for {duration:.0f}s more")
    if duration:
        await asyncio.sleep(duration)
    else:
        await asyncio.Event().wait()


__all__ = ["run_demo"]
