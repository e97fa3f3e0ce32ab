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
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from gateway import logs
from gateway.config import Config, parse_config
from gateway.daemon import Gateway
from simulators import spawn
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


def _scan(d: dict[str, Any]) -> str:
    code = str(d.get("code", "")).replace("\x1d", "<GS>")
    code = code if len(code) <= 48 else code[:45] + "..."
    return f"{code}  [dim]{d.get('symbology') or ''}[/]"


def _nfc(d: dict[str, Any]) -> str:
    records = d.get("ndef") or []
    uri = records[0].get("uri", "") if records else ""
    return f"{d.get('product') or d.get('type')} uid {d.get('uid')} {uri}"


def _mode(d: dict[str, Any]) -> str:
    return f"[dim]({d.get('mode')})[/]" if d.get("mode") else ""


_SUMMARIES: dict[str, Callable[[dict[str, Any]], str]] = {
    "scan": _scan,
    "nfc": _nfc,
    "error": lambda d: f"[red]{d.get('reason')}[/]: {d.get('message')}",
    "card": lambda d: f"uid {d.get('uid')} member_no {d.get('member_no', '-')}",
    "member.identified": lambda d: f"{d.get('member_id')} by {d.get('by')} {_mode(d)}",
    "coupon.redeemed": lambda d: (
        f"{d.get('coupon_id')} {d.get('value')} {d.get('currency')}"
        f"{' offline' if d.get('offline') else ''} {_mode(d)}"
    ),
    "points.accrued": lambda d: f"{d.get('member_id')} {d.get('amount')} {d.get('currency')}",
    "redemption.conflict": lambda d: f"[red]{d.get('coupon_id')}: {d.get('reason')}[/]",
    "counter.refused": lambda d: f"[red]{d.get('operation')}: {d.get('reason')}[/]",
    "price.sync": lambda d: (
        f"{d.get('reason')}: updated {len(d.get('updated') or [])}, "
        f"failed {len(d.get('failed') or [])}"
    ),
}


def _summarise(kind: str, data: dict[str, Any]) -> str:
    short = _SUMMARIES.get(kind)
    if short is not None:
        return short(data)
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
        self.mosquitto = (
            MosquittoBroker(persistence=True, die_with_parent=True) if find_mosquitto() else None
        )
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
            await self.mosquitto.astart()
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
    # Its own network namespace keeps vpcd's card port off the LAN; it dies with the demo.
    proc = await asyncio.create_subprocess_exec(
        *spawn.command([binary, "-f", "-a"], private_net=True),
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
    api_port: int,
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
            "delivery_poll_s": 0.5,  # simulated tags check in at once: report delivery quickly
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
            "api": {"listen": f"127.0.0.1:{api_port}"},
            "kiosks": [{"name": "kiosk-1", "language": "en"}],
            "gateway": {
                "store_id": STORE,
                "gateway_id": GATEWAY,
                "data_dir": str(data_dir / "gw"),
                "test_box": True,  # its card reader is vpcd
            },
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


def _fresh(data_dir: Path) -> None:
    """Each demo starts a new store: remove what an earlier run left (only the demo's files)."""
    for name in ("gw", "labels"):
        shutil.rmtree(data_dir / name, ignore_errors=True)
    for path in data_dir.glob("cloud.db*"):
        path.unlink()


def _tokens(gw_dir: Path) -> tuple[str, str]:
    from gateway.api.auth import TokenStore

    gw_dir.mkdir(parents=True, exist_ok=True)
    store = TokenStore(gw_dir / "api-tokens.db")
    return store.create("till-1-pos"), store.create("kiosk-1-page", kiosk="kiosk-1")


def _stop_on_signals() -> None:
    """SIGTERM (``timeout``, systemd, kill) and SIGHUP end the demo like Ctrl-C: the task is
    cancelled, so every ``finally`` stops its child (pcscd, mosquitto). Python's default
    would exit at once and leave them running."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, task.cancel)


async def run_demo(data_dir: Path, *, outage: bool = True, duration: float = 0.0) -> int:
    from drivers.nfc.codec import encode_ndef_message, uri_record
    from simulators.nfc import EmulatedNtag, NfcTagSimulator
    from simulators.oepl import OeplSimulator, VirtualTag

    _stop_on_signals()
    logs.setup("text", "WARNING")
    for name in ("gateway.bridge", "gateway.supervisor", "gateway.daemon"):
        logging.getLogger(name).setLevel(logging.INFO)
    logging.getLogger("simulators").setLevel(logging.ERROR)  # the cloud's own redials
    logging.getLogger("nfc").setLevel(logging.WARNING)
    logging.getLogger("mqtt").setLevel(logging.CRITICAL)  # paho's socket errors: bridge logs them
    png_dir = data_dir / "labels"
    await asyncio.to_thread(_fresh, data_dir)
    await asyncio.to_thread(png_dir.mkdir, parents=True, exist_ok=True)
    api_port = free_port()
    pos_token, kiosk_token = await asyncio.to_thread(_tokens, data_dir / "gw")
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
                    api_port=api_port,
                )
                console.print(f"  scanner : {scanner.path} (typing codes at till-1)")
                console.print(
                    f"  cards   : {READER if smartcard else 'off (install pcscd vsmartcard-vpcd)'}"
                )
                console.print(f"  nfc     : udp:127.0.0.1:{nfc_port} (a tag tapped every few s)")
                console.print(
                    f"  labels  : OpenEPaperLink AP {access_point.url}, {len(tags)} labels"
                )
                console.print(f"  label images (PNG), as the shelf shows them: {png_dir}/")
                base = f"http://127.0.0.1:{api_port}"
                console.print(f"  kiosk   : open {base}/kiosk/#token={kiosk_token}")
                gateway = Gateway(config)
                await _run_store(
                    gateway,
                    cloud=cloud,
                    broker=broker,
                    scanner=scanner,
                    smartcard=smartcard,
                    till=_Till(base, pos_token),
                    outage=outage,
                    duration=duration,
                )
    finally:
        broker.cleanup()
        _summary(cloud)
    return 0


class _Till:
    """The POS software at till-1, talking to the gateway's local API with its own token."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}"}

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        import aiohttp

        async with (
            aiohttp.ClientSession() as http,
            http.post(self.base + path, json=body, headers=self.headers) as resp,
        ):
            return resp.status, await resp.json()

    async def get(self, path: str) -> dict[str, Any]:
        import aiohttp

        async with (
            aiohttp.ClientSession() as http,
            http.get(self.base + path, headers=self.headers) as resp,
        ):
            doc: dict[str, Any] = await resp.json()
            return doc


def _answer(what: str, status: int, doc: dict[str, Any]) -> None:
    mode = doc.get("mode") or (doc.get("error") or {}).get("mode") or "-"
    style = "green" if status < 400 else "red"
    detail = doc.get("error", {}).get("code") if status >= 400 else _brief(doc)
    console.print(f"  [blue]till-1 API[/] {what}: [{style}]{status}[/] mode={mode} {detail}")


def _brief(doc: dict[str, Any]) -> str:
    keys = ("member_id", "coupon_id", "value", "points_added", "points", "status", "cached")
    found = {k: doc[k] for k in keys if k in doc}
    member = doc.get("member")
    if isinstance(member, dict):
        found.update({k: member[k] for k in ("member_id", "name", "points") if k in member})
    return json.dumps(found, ensure_ascii=False, default=str)


async def _scan_at_till(scanner: PtyScanner, text: str, what: str) -> None:
    console.print(f"  [blue]till-1 scanner[/] {what}")
    await asyncio.to_thread(scanner.type, text)


async def _run_store(
    gateway: Gateway,
    *,
    cloud: CloudService,
    broker: _Broker,
    scanner: PtyScanner,
    smartcard: bool,
    till: _Till,
    outage: bool,
    duration: float,
) -> None:
    from simulators.phone import Phone

    async with asyncio.TaskGroup() as tg:
        background = [tg.create_task(gateway.run(), name="gateway")]
        await gateway.ready.wait()
        await _wait(gateway.bridge.connected.is_set, 10)
        await _wait(lambda: len(gateway.counter.keys.keyset) > 0 if gateway.counter else True, 10)
        say("events flowing live (devices -> outbox -> MQTT -> cloud)")
        await _wait(lambda: gateway.devices["till-1-scanner"].health.state == "available", 10)
        if smartcard:
            background.append(tg.create_task(_present_cards(gateway), name="cards"))
        await _shelf(cloud, gateway)
        phone = await Phone.enroll(cloud, seed.ALICE, refresh_s=2.0)

        say("at the counter, online: Alice identifies with her phone and redeems a coupon")
        await _scan_at_till(scanner, phone.code(), "Alice's dynamic member QR (SGM1, signed)")
        await asyncio.sleep(1.5)
        welcome = await cloud.coupon_token(seed.COUPON_WELCOME)
        await _scan_at_till(scanner, welcome, "coupon CPN-WELCOME-5 (signed token)")
        await asyncio.sleep(1.0)
        _answer(
            "accrue 42.50 EUR",
            *await till.post(
                "/v1/points/accrue",
                {
                    "till": "till-1",
                    "member_id": seed.ALICE,
                    "amount": "42.50",
                    "currency": "EUR",
                    "receipt_id": "R-1001",
                    "items": [{"sku": "4006381333931", "qty": 2, "price": "1.49"}],
                },
            ),
        )
        background.append(tg.create_task(_product_scans(scanner), name="scans"))
        await asyncio.sleep(3)
        if outage:
            await _outage(broker, gateway, cloud, till, phone)
        await _flash_sale(cloud)
        say("running; Ctrl-C to stop" if not duration else f"running for {duration:.0f}s more")
        if duration:
            await asyncio.sleep(duration)
        else:
            await asyncio.Event().wait()
        for task in background:
            task.cancel()


async def _product_scans(scanner: PtyScanner) -> None:
    """Ordinary product scans (and the odd misread) in the background."""
    products = [c for c in BUILTIN_CODES if c[0] in ("]E0", "]C1", "]d2")]
    for n in itertools.count():
        aim, code = products[n % len(products)]
        await asyncio.to_thread(scanner.type, aim + code)
        if n % 5 == 4:
            await asyncio.to_thread(scanner.type, GARBAGE[0])  # a misread: an error event
        await asyncio.sleep(1.5)


async def _shelf(cloud: CloudService, gateway: Gateway) -> None:
    await _wait(lambda: gateway.devices["shelf-ap"].health.state == "available", 10)
    say("the cloud binds shelf labels to products and sends the price list")
    for mac, sku in LABELS.items():
        await cloud.bind_label(STORE, GATEWAY, label=mac, sku=sku, device="shelf-ap")
    result = await cloud.push_price_list(STORE, GATEWAY, wait_s=5.0)
    data = result.get("data") or {}
    console.print(
        f"  [magenta]price sync[/]: updated {len(data.get('updated', []))}, "
        f"failed {len(data.get('failed', []))}, pending {len(data.get('pending', []))}"
    )


async def _outage(
    broker: _Broker, gateway: Gateway, cloud: CloudService, till: _Till, phone: Any
) -> None:
    say("OUTAGE: the store's internet drops (broker stopped)", "bold red")
    await broker.stop()
    await _wait(lambda: not gateway.bridge.connected.is_set(), 10)
    await asyncio.sleep(2.1)  # the phone shows a fresh code
    _answer(
        "identify Alice by her QR",
        *await till.post("/v1/identify", {"till": "till-1", "by": "qr", "code": phone.code()}),
    )
    gold = await cloud.coupon_token(seed.COUPON_GOLD)
    _answer(
        "redeem CPN-GOLD-15 (offline rules)",
        *await till.post(
            "/v1/coupons/redeem", {"till": "till-1", "coupon": gold, "member_id": seed.ALICE}
        ),
    )
    _answer(
        "redeem CPN-GOLD-15 again",
        *await till.post(
            "/v1/coupons/redeem", {"till": "till-1", "coupon": gold, "member_id": seed.ALICE}
        ),
    )
    big = await cloud.coupon_token(seed.COUPON_BIG)
    _answer(
        "redeem CPN-BIG-50 (over the offline cap)",
        *await till.post("/v1/coupons/redeem", {"till": "till-1", "coupon": big}),
    )
    await cloud.mark_coupon_used(seed.COUPON_BEARER, store_id="S999")
    console.print("  [dim](meanwhile another store redeems CPN-SPRING-10 online)[/]")
    spring = await cloud.coupon_token(seed.COUPON_BEARER)
    _answer(
        "redeem CPN-SPRING-10 (offline)",
        *await till.post("/v1/coupons/redeem", {"till": "till-1", "coupon": spring}),
    )
    _answer(
        "accrue 19.90 EUR",
        *await till.post(
            "/v1/points/accrue",
            {
                "till": "till-1",
                "member_id": seed.ALICE,
                "amount": "19.90",
                "currency": "EUR",
                "receipt_id": "R-1002",
                "items": [],
            },
        ),
    )
    for _ in range(3):
        await asyncio.sleep(1)
        stats = await gateway.outbox.stats()
        console.print(
            f"  [red]offline[/]: the store keeps working; outbox holds {stats.depth} "
            f"event(s), oldest {stats.oldest_age_s or 0:.1f}s"
        )
    say(
        "link restored: the backlog replays in order, offline operations are reconciled",
        "bold yellow",
    )
    await broker.start()
    await _wait(lambda: gateway.outbox._depth == 0, 20)
    conflicts: dict[str, Any] = {}

    async def have_conflict() -> bool:
        nonlocal conflicts
        conflicts = await till.get("/v1/conflicts")
        return bool(conflicts.get("conflicts"))

    for _ in range(100):  # the reconciler runs right after the reconnect
        if await have_conflict():
            break
        await asyncio.sleep(0.2)
    for c in conflicts.get("conflicts", []):
        console.print(
            f"  [red]conflict[/]: {c.get('coupon_id')} {c.get('reason')}: {c.get('message')}"
        )
    console.print(f"  outbox drained: depth {(await gateway.outbox.stats()).depth}")


async def _flash_sale(cloud: CloudService) -> None:
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    now = datetime.now(UTC)
    say("the cloud starts a 15 s flash sale on pens: the shelf label changes, then reverts")
    await cloud.push_flash_sale(
        STORE,
        GATEWAY,
        start=now,
        end=now + timedelta(seconds=15),
        promo_text="Flash sale",
        skus=["4006381333931"],
        percent_off=Decimal(30),
    )


def _summary(cloud: CloudService) -> None:
    report = cloud.report()
    gaps = sum(len(g) for g in report.get("gaps", {}).values())
    say(
        f"cloud received {report.get('unique', 0)} unique events "
        f"({report.get('duplicates', 0)} duplicates ignored, {report.get('replayed', 0)} "
        f"replayed), seq gaps: {gaps}",
        "bold green",
    )


__all__ = ["run_demo"]
