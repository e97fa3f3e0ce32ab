"""``storegw demo``: a whole simulated store on one machine, narrated in the terminal.

A broker (Mosquitto, or amqtt in-process where Mosquitto is missing), the cloud member
service, the gateway and a simulated device of every kind: a till scanner on a pty, a member
card in a virtual PC/SC reader (when pcscd and vsmartcard-vpcd are installed), an NFC tag
tapped over nfcpy's udp device, and shelf labels on an OpenEPaperLink access point whose
images are saved as PNG. Then the broker is stopped, the till keeps working into the outbox,
the broker returns and the backlog replays. Ctrl-C ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from gateway import logs
from gateway.config import Config, parse_config
from gateway.daemon import Gateway
from simulators.broker import EmbeddedBroker, MosquittoBroker, find_mosquitto, free_port
from simulators.cloud import CloudService, seed
from simulators.scanner import BUILTIN_CODES, GARBAGE, PtyScanner

console = Console(highlight=False, soft_wrap=True)
log = logging.getLogger(__name__)

STORE, GATEWAY = "DEMO1", "gw-1"
READER = "Virtual PCD 00 00"
LABELS = {
    "0000021A2B3C4D5E": "4006381333931",
    "0000021A2B3C4D5F": "4000000000001",
    "0000021A2B3C4D60": "4000000000002",
}


def say(text: str, style: str = "bold cyan") -> None:
    console.print(f"[{style}]== {text}[/]")


def _summarise(kind: str, data: dict[str, Any]) -> str:
    if kind == "scan":
        code = str(data.get("code", "")).replace("\x1d", "<GS>")
        code = code if len(code) <= 48 else code[:45] + "..."
        return f"{code}  [dim]{data.get('symbology') or ''}[/]"
    if kind == "error":
        return f"[red]{data.get('reason')}[/]: {data.get('message')}"
    if kind == "card":
        return f"uid {data.get('uid')} member_no {data.get('member_no', '-')}"
    if kind == "nfc":
        records = data.get("ndef") or []
        first = records[0] if records else {}
        product = data.get("product") or data.get("type")
        return f"{product} uid {data.get('uid')} {first.get('uri', '')}"
    text = json.dumps(data, ensure_ascii=False)
    return text if len(text) <= 70 else text[:67] + "..."


def _show(event: dict[str, Any], duplicate: bool) -> None:
    tag = " [yellow]replayed[/]" if event.get("replayed") else ""
    dup = " [red]duplicate[/]" if duplicate else ""
    console.print(
        f"  [green]cloud <-[/] #{event['seq']:<4} {event['device_id']:<15} "
        f"[bold]{event['kind']:<14}[/] {_summarise(event['kind'], event.get('data') or {})}"
        f"{tag}{dup}",
    )


class _Broker:
    """Mosquitto when installed, else amqtt in-process; both can be stopped and restarted."""

    def __init__(self) -> None:
        # Persistence + the cloud's persistent session: as in production, events the gateway
        # replays while the cloud is still reconnecting wait in the broker, not vanish.
        self.mosquitto = MosquittoBroker(persistence=True) if find_mosquitto() else None
        self.embedded = None if self.mosquitto else EmbeddedBroker()

    @property
    def url(self) -> str:
        if self.mosquitto is not None:
            return self.mosquitto.url
        assert self.embedded is not None
        return self.embedded.url

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


def _pcsc_readers() -> list[str] | None:
    try:
        from smartcard.System import readers
    except ImportError:
        return None
    try:
        return [str(r) for r in readers()]
    except Exception:  # pcscd not answering: pyscard raises its own exception types
        return None


@contextlib.asynccontextmanager
async def _pcscd() -> AsyncIterator[bool]:
    """A pcscd with the virtual readers: reuse a running one, else start one if installed."""
    listed = await asyncio.to_thread(_pcsc_readers)
    if listed is not None and READER in listed:
        yield True
        return
    binary = shutil.which("pcscd") or "/usr/sbin/pcscd"
    if listed is not None or not await asyncio.to_thread(Path(binary).exists):
        yield False  # a foreign pcscd without vpcd, or none installed
        return
    for stale in (Path("/run/pcscd/pcscd.comm"), Path("/run/pcscd/pcscd.pid")):
        with contextlib.suppress(OSError):
            stale.unlink()
    proc = await asyncio.create_subprocess_exec(
        binary,
        "-f",
        "-a",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        ok = await _wait(lambda: READER in (_pcsc_readers() or []), 10)
        yield ok
    finally:
        proc.terminate()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await proc.wait()


async def _wait(cond: Callable[[], object], timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def _config(
    broker_url: str,
    data_dir: Path,
    scanner_port: str,
    protocol: str,
    *,
    nfc_port: int,
    oepl_url: str,
    smartcard: bool,
) -> Config:
    devices: list[dict[str, Any]] = [
        {
            "id": "till-1-scanner",
            "kind": "scanner",
            "port": scanner_port,
            "terminator": "CR",
            "aim_prefix": True,
            "till": "till-1",
        },
        {
            "id": "counter-nfc",
            "kind": "nfc",
            "device": f"udp:127.0.0.1:{nfc_port}",
            "targets": ["106A"],
            "till": "till-1",
        },
        {
            "id": "shelf-ap",
            "kind": "label",
            "backend": "oepl",
            "url": oepl_url,
            "poll_interval_s": 5,
            "labels": [{"id": mac, "panel": "2.9"} for mac in LABELS],
        },
    ]
    if smartcard:
        devices.append(
            {
                "id": "till-1-cards",
                "kind": "smartcard",
                "reader": READER,
                "member_aid": "F05354475701",
                "till": "till-1",
            }
        )
    return parse_config(
        {
            "gateway": {"store_id": STORE, "gateway_id": GATEWAY, "data_dir": str(data_dir / "gw")},
            "mqtt": {
                "url": broker_url,
                "protocol": protocol,
                "keepalive_s": 5,
                "reconnect_min_s": 0.2,
                "reconnect_max_s": 2.0,
            },
            "supervisor": {"retry_min_s": 0.5, "retry_max_s": 3.0},
            "devices": devices,
        }
    )


async def _type_scans(scanner: PtyScanner, gateway: Gateway, interval: float) -> None:
    await _wait(lambda: gateway.devices["till-1-scanner"].health.state == "available", 10)
    for n in itertools.count():
        aim, code = BUILTIN_CODES[n % len(BUILTIN_CODES)]
        await asyncio.to_thread(scanner.type, aim + code)
        if n % 7 == 6:
            await asyncio.to_thread(scanner.type, GARBAGE[0])  # a misread: an error event
        await asyncio.sleep(interval)


async def _present_cards(gateway: Gateway) -> None:
    from simulators.card import VirtualCard

    await _wait(lambda: gateway.devices["till-1-cards"].health.state == "available", 10)
    while True:
        await asyncio.sleep(4)
        async with VirtualCard(uid=seed.CARD_ALICE, member_no="1001"):
            await asyncio.sleep(2)  # the card rests on the reader, then is taken away


async def _push_labels(cloud: CloudService, gateway: Gateway, png_dir: Path) -> None:
    await _wait(lambda: gateway.devices["shelf-ap"].health.state == "available", 10)
    for mac, sku in LABELS.items():
        result = await cloud.push_price(STORE, GATEWAY, device="shelf-ap", label=mac, sku=sku)
        state = "queued" if result.get("ok") else f"failed: {result.get('error')}"
        console.print(f"  [magenta]cloud ->[/] label.show {sku} on {mac}: {state}")
    console.print(f"  label images (PNG) as the shelf shows them: {png_dir}/")


async def run_demo(data_dir: Path, *, outage: bool = True, duration: float = 0.0) -> int:
    from drivers.nfc.codec import encode_ndef_message, uri_record
    from simulators.nfc import EmulatedNtag, NfcTagSimulator
    from simulators.oepl import OeplSimulator, VirtualTag

    logs.setup("text", "WARNING")
    logging.getLogger("gateway").setLevel(logging.INFO)
    png_dir = data_dir / "labels"
    await asyncio.to_thread(png_dir.mkdir, parents=True, exist_ok=True)
    broker = _Broker()
    say("starting a simulated store")
    await broker.start()
    kind = "Mosquitto" if broker.mosquitto else "embedded amqtt (MQTT 3.1.1; install mosquitto)"
    console.print(f"  broker  : {broker.url} ({kind})")
    nfc_port = free_port()
    sticker = EmulatedNtag(
        seed.NFC_BRUNO,
        "NTAG213",
        ndef=encode_ndef_message([uri_record(f"https://member.example.com/t/{STORE}/counter")]),
    )
    cloud = CloudService(
        broker.url,
        data_dir / "cloud.db",
        on_event=_show,
        protocol=broker.protocol,
        identifier="storegw-demo-cloud",
        session_expiry_s=3600 if broker.mosquitto else 0,
    )
    tags = [VirtualTag(mac=mac, panel="2.9") for mac in LABELS]
    try:
        async with (
            _pcscd() as smartcard,
            OeplSimulator(tags, png_dir=png_dir) as access_point,
            cloud,
        ):
            with (
                PtyScanner() as scanner,
                NfcTagSimulator(nfc_port, sticker, repeat=True, dwell_s=1.0, gap_s=5.0),
            ):
                config = _config(
                    broker.url,
                    data_dir,
                    scanner.path,
                    broker.protocol,
                    nfc_port=nfc_port,
                    oepl_url=access_point.url,
                    smartcard=smartcard,
                )
                console.print(f"  scanner : {scanner.path} (typing codes at till-1)")
                console.print(
                    f"  cards   : {READER if smartcard else 'off (install pcscd vsmartcard-vpcd)'}"
                )
                console.print(f"  nfc     : udp:127.0.0.1:{nfc_port} (a tag tapped every few s)")
                console.print(
                    f"  labels  : OpenEPaperLink AP {access_point.url}, {len(tags)} labels"
                )
                gateway = Gateway(config)
                await _run_store(
                    gateway,
                    cloud=cloud,
                    broker=broker,
                    scanner=scanner,
                    smartcard=smartcard,
                    png_dir=png_dir,
                    outage=outage,
                    duration=duration,
                )
    finally:
        broker.cleanup()
        _summary(cloud)
    return 0


async def _run_store(
    gateway: Gateway,
    *,
    cloud: CloudService,
    broker: _Broker,
    scanner: PtyScanner,
    smartcard: bool,
    png_dir: Path,
    outage: bool,
    duration: float,
) -> None:
    async with asyncio.TaskGroup() as tg:
        background = [tg.create_task(gateway.run(), name="gateway")]
        await gateway.ready.wait()
        await _wait(gateway.bridge.connected.is_set, 10)
        say("events flowing live (devices -> outbox -> MQTT -> cloud)")
        background.append(tg.create_task(_type_scans(scanner, gateway, 0.8), name="scanner"))
        if smartcard:
            background.append(tg.create_task(_present_cards(gateway), name="cards"))
        await _push_labels(cloud, gateway, png_dir)
        await tg.create_task(_story(broker, gateway, outage, duration), name="story")
        for task in background:
            task.cancel()


def _summary(cloud: CloudService) -> None:
    report = cloud.report()
    gaps = sum(len(g) for g in report.get("gaps", {}).values())
    say(
        f"cloud received {report.get('unique', 0)} unique events "
        f"({report.get('duplicates', 0)} duplicates ignored, {report.get('replayed', 0)} "
        f"replayed), seq gaps: {gaps}",
        "bold green",
    )


async def _story(broker: _Broker, gateway: Gateway, outage: bool, duration: float) -> None:
    await asyncio.sleep(8)
    if outage:
        say("OUTAGE: the store's internet drops (broker stopped)", "bold red")
        await broker.stop()
        for _ in range(8):
            await asyncio.sleep(1)
            stats = await gateway.outbox.stats()
            console.print(
                f"  [red]offline[/]: the store keeps working; outbox holds {stats.depth} "
                f"event(s), oldest {stats.oldest_age_s or 0:.1f}s"
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
