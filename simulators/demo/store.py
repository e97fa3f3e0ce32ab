"""The simulated store's surroundings: broker, pcscd with the virtual reader, the gateway's
config and API tokens."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import faulthandler
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from gateway.config import Config, parse_config
from simulators import spawn
from simulators.broker import EmbeddedBroker, MosquittoBroker, find_mosquitto

STORE, GATEWAY, ISLAND = "DEMO1", "gw-1", "gw-2"
"""The store, its main gateway (the store's ledger authority) and the second till island's."""

READER = "Virtual PCD 00 00"

LABELS = {
    "0000021A2B3C4D5E": "4006381333931",
    "0000021A2B3C4D5F": "4000000000001",
    "0000021A2B3C4D60": "4000000000002",
}


class DemoBroker:
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
async def pcscd() -> AsyncIterator[bool]:
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
        ok = await wait_until(lambda: READER in (_pcsc_readers() or []), 10)
        yield ok
    finally:
        proc.terminate()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await proc.wait()


async def wait_until(cond: Callable[[], object], timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def store_config(
    broker_url: str,
    data_dir: Path,
    scanner_port: str,
    protocol: str,
    *,
    nfc_port: int,
    oepl_url: str,
    smartcard: bool,
    api_port: int,
    store_ledger: dict[str, Any],
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
            "mqtt": _mqtt(broker_url, protocol),
            "supervisor": {"retry_min_s": 0.5, "retry_max_s": 3.0},
            "devices": devices,
            "store_ledger": store_ledger,
        }
    )


def _mqtt(broker_url: str, protocol: str) -> dict[str, Any]:
    return {
        "url": broker_url,
        "protocol": protocol,
        "keepalive_s": 5,
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 2.0,
    }


def ledger_identities(data_dir: Path) -> dict[str, dict[str, str]]:
    """Both gateways' store-LAN identities, issued by the demo cloud's CA as enrolment would."""
    from datetime import timedelta

    from simulators.cloud.enrollment.pki import CloudPki

    pki = CloudPki.open(data_dir / "pki")
    out = {}
    for gw in (GATEWAY, ISLAND):
        files = pki.issue_files(STORE, gw, data_dir / "pki" / gw, timedelta(days=1))
        out[gw] = {
            "ca_file": str(files.ca),
            "cert_file": str(files.cert),
            "key_file": str(files.key),
        }
    return out


def island_config(
    broker_url: str, data_dir: Path, protocol: str, *, api_port: int, store_ledger: dict[str, Any]
) -> Config:
    """The second till island (till-3): a gateway of its own, no devices, the local API for its
    POS, holding single-use tokens through gw-1 while the internet is down."""
    return parse_config(
        {
            "api": {"listen": f"127.0.0.1:{api_port}"},
            "gateway": {"store_id": STORE, "gateway_id": ISLAND, "data_dir": str(data_dir / "gw2")},
            "mqtt": _mqtt(broker_url, protocol),
            "counter": {"tills": ["till-3"]},
            "store_ledger": store_ledger,
        }
    )


def fresh(data_dir: Path) -> None:
    """Each demo starts a new store: remove what an earlier run left (only the demo's files)."""
    for name in ("gw", "gw2", "labels", "pki"):
        shutil.rmtree(data_dir / name, ignore_errors=True)
    for path in data_dir.glob("cloud.db*"):
        path.unlink()


def api_tokens(gw_dir: Path) -> tuple[str, str]:
    from gateway.api.auth import TokenStore

    gw_dir.mkdir(parents=True, exist_ok=True)
    store = TokenStore(gw_dir / "api-tokens.db")
    return store.create("till-1-pos"), store.create("kiosk-1-page", kiosk="kiosk-1")


def island_token(gw_dir: Path) -> str:
    from gateway.api.auth import TokenStore

    gw_dir.mkdir(parents=True, exist_ok=True)
    return TokenStore(gw_dir / "api-tokens.db").create("till-3-pos", till="till-3")


@dataclasses.dataclass
class StopRequest:
    """Set by the first SIGTERM, SIGHUP or Ctrl-C. While ``cancel_task`` holds (start-up), the
    signal also cancels the demo's task; once the scenes run as their own task, the demo
    waits for ``event`` and stops them itself."""

    event: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    cancel_task: bool = True
    signal: str | None = None
    at: float = 0.0


def stop_on_signals(grace_s: float = 15.0) -> StopRequest:
    """SIGTERM (``timeout``, systemd, kill), SIGHUP and Ctrl-C end the demo alike, so every
    ``finally`` stops its child (pcscd, mosquitto). Python's default would exit at once and
    leave them running.

    A shutdown that hangs must still end: after ``grace_s``, or at another signal (not the
    same one again within a second), every thread's and task's stack goes to stderr, so the
    hang can be fixed, and the process exits; its children die with it (PR_SET_PDEATHSIG)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    request = StopRequest()

    def on_signal(name: str) -> None:
        now = time.monotonic()
        if request.signal is not None:
            if request.signal == name and now - request.at < 1.0:
                return  # one signal twice: ``timeout`` sends it to the child and its group
            _give_up(loop, f"{name} while stopping")
        request.signal, request.at = name, now
        request.event.set()
        print(f"demo: {name}, stopping (another signal forces it)", file=sys.stderr, flush=True)
        if request.cancel_task:
            task.cancel()
        threading.Thread(
            target=_watchdog, args=(loop, grace_s), name="demo-stop-watchdog", daemon=True
        ).start()

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    return request


def _watchdog(loop: asyncio.AbstractEventLoop, grace_s: float) -> None:
    time.sleep(grace_s)  # a daemon thread: a demo that stops in time never gets past this
    _give_up(loop, f"still stopping after {grace_s:g} s")


def _awaiting(task: asyncio.Task[Any]) -> list[str]:
    """Where ``task`` waits, outermost first, through every coroutine it awaits (3.11's
    ``Task.print_stack`` shows only the outermost frame of a suspended task)."""
    lines: list[str] = []
    coro: Any = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            lines.append(f"{code.co_filename}:{frame.f_lineno} in {code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return lines


def _give_up(loop: asyncio.AbstractEventLoop, why: str) -> None:
    err = sys.stderr
    print(f"demo: {why}; stacks follow, then exit", file=err, flush=True)
    faulthandler.dump_traceback(file=err, all_threads=True)
    for _ in range(3):  # the set can change under us: this thread does not own the loop
        try:
            for pending in asyncio.all_tasks(loop):
                print(f"task {pending.get_name()}:", file=err)
                for line in _awaiting(pending):
                    print(f"  {line}", file=err)
            break
        except RuntimeError:
            continue
    err.flush()
    os._exit(1)
