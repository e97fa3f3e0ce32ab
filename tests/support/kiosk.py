"""A gateway set up as a store's kiosks (scanner + NFC reader) with its API, and a client for
the kiosk's endpoints and WebSocket: shared by the kiosk API, browser and hostile-input tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from gateway.api.auth import TokenStore
from gateway.config import Config
from gateway.daemon import Gateway
from gateway.kiosk.service import KioskService
from simulators.scanner import PtyScanner
from tests.support.config import make_config
from tests.support.counter import online
from tests.support.gateway import running
from tests.support.http import TokenClient
from tests.support.link import Link
from tests.support.waiting import wait_for

KIOSK = "kiosk-1"
SCANNER = "kiosk-1-scanner"
NFC = "kiosk-1-nfc"


def kiosk_config(
    broker_url: str, data_dir: Path, scanner_port: str, nfc_port: int | None = None
) -> Config:
    """kiosk-1 (scanner + NFC reader, Chinese first), kiosk-2 (English), and a till."""
    nfc: dict[str, Any] = {"id": NFC, "kind": "nfc", "enabled": False}
    if nfc_port is not None:
        nfc = {
            "id": NFC,
            "kind": "nfc",
            "device": f"udp:127.0.0.1:{nfc_port}",
            "targets": ["106A"],
        }
    devices: list[dict[str, Any]] = [
        {"id": SCANNER, "kind": "scanner", "port": scanner_port},
        nfc,
        {"id": "kiosk-2-scanner", "kind": "scanner", "port": "/dev/null-none", "enabled": False},
        {
            "id": "till-1-scanner",
            "kind": "scanner",
            "port": "/dev/null-none",
            "enabled": False,
            "till": "till-1",
        },
    ]
    return make_config(
        broker_url,
        data_dir,
        devices,
        counter={"rpc_timeout_s": 1.0, "reconcile_interval_s": 0.3},
        api={"listen": "127.0.0.1:0"},
        kiosks=[
            {"name": KIOSK, "devices": [SCANNER, NFC], "language": "zh", "idle_reset_s": 60},
            {
                "name": "kiosk-2",
                "devices": ["kiosk-2-scanner"],
                "language": "en",
                "origins": ["https://kiosk-2.store.example"],
            },
        ],
    )


@dataclass
class KioskApi(TokenClient):
    gw: Gateway
    base: str
    token: str
    pos_token: str
    tokens: TokenStore
    http: aiohttp.ClientSession
    scanner: PtyScanner

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/v1/kiosk/ws"

    @property
    def kiosks(self) -> KioskService:
        assert self.gw.kiosks is not None
        return self.gw.kiosks

    def named_tokens(self) -> dict[str, str]:
        """ "kiosk" (the default) and "pos" name the kiosk's and a till's token."""
        return {"kiosk": self.token, "pos": self.pos_token}

    async def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        status, doc = await self.call(method, path, body, **kw)
        assert status == 200, doc
        return doc

    async def refused(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, str]:
        status, doc = await self.call(method, path, body, **kw)
        assert set(doc) <= {"error", "mode"}, doc
        assert doc["error"]["message"], doc
        return status, doc["error"]["code"]

    async def ticket(self) -> str:
        return str((await self.ok("POST", "/v1/kiosk/ws-ticket"))["ticket"])

    @contextlib.asynccontextmanager
    async def socket(self, **query: str) -> AsyncIterator[Socket]:
        if not query:
            query = {"ticket": await self.ticket()}
        async with self.http.ws_connect(self.ws_url, params=query) as ws:
            sock = Socket(ws)
            sock.hello = await sock.next("hello")
            yield sock


class Socket:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.hello: dict[str, Any] = {}
        self.seen: list[dict[str, Any]] = []

    async def next(self, kind: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """The next push of type ``kind`` whose fields have the ``match`` values (all pushes
        are kept in ``seen``)."""
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.ws.receive()
                assert msg.type == aiohttp.WSMsgType.TEXT, f"socket ended: {msg}"
                doc: dict[str, Any] = json.loads(msg.data)
                self.seen.append(doc)
                if doc["type"] == kind and all(doc.get(k) == v for k, v in match.items()):
                    return doc


@contextlib.asynccontextmanager
async def kiosk_running(
    link: Link, data_dir: Path, scanner: PtyScanner, nfc_port: int | None = None
) -> AsyncIterator[KioskApi]:
    tokens = TokenStore(data_dir / "api-tokens.db")
    kiosk_token = tokens.create("kiosk-1-page", kiosk=KIOSK)
    pos_token = tokens.create("pos-1")
    gw = Gateway(kiosk_config(link.url, data_dir, scanner.path, nfc_port))
    async with running(gw), aiohttp.ClientSession() as http:
        assert gw.api is not None
        assert gw.api.port is not None
        api = KioskApi(
            gw, f"http://127.0.0.1:{gw.api.port}", kiosk_token, pos_token, tokens, http, scanner
        )
        await online(gw)
        await wait_for(
            lambda: gw.devices[SCANNER].health.state == "available", message="kiosk scanner open"
        )
        yield api
