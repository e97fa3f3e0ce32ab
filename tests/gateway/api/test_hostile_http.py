"""The local API and the kiosk socket against hostile clients (the real daemon's HTTP server).

Guarded here: deeply nested JSON bodies get a 4xx answer, not 500; an oversized
``Authorization`` header puts no part of the token into the log (aiohttp's "Error handling
request" traceback would); the kiosk socket accepts only its configured ``Origin``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.kiosk.config import KioskConfig
from simulators.cloud import CloudService
from simulators.scanner import PtyScanner
from tests.support.kiosk import KIOSK, KioskApi, kiosk_running
from tests.support.link import Link

NESTS = [
    b"[" * 60_000,  # the API takes at most 64 KiB
    b'{"till": "kiosk-1", "x": ' + b"[" * 50_000 + b"}",
    b'{"a":' * 12_000,
    b'{"x": ' + b'{"y": [' * 20 + b"1" + b"]}" * 20 + b"}",  # 41 levels, valid JSON
    b'{"amount": 1e400}',
    b'{"by": "\\ud800"}',
]


@pytest.fixture
async def api(
    link: Link,
    cloud: CloudService,
    scanner: PtyScanner,
    tmp_path: Path,
) -> AsyncIterator[KioskApi]:
    async with kiosk_running(link, tmp_path / "gw", scanner) as running:
        yield running


POS_ROUTES = ["/v1/identify", "/v1/coupons/redeem", "/v1/points/accrue", "/v1/appointments/checkin"]
KIOSK_ROUTES = ["/v1/identify", "/v1/coupons/redeem", "/v1/coupons/claim"]


async def test_nested_json_bodies_are_400_bad_json_on_every_route(api: KioskApi) -> None:
    cases = [(r, api.pos_token) for r in POS_ROUTES] + [(r, api.token) for r in KIOSK_ROUTES]
    answers = []
    for path, token in cases:
        for body in NESTS:
            status, doc = await api.call("POST", path, token=token, raw=body)
            answers.append((path, status, doc["error"]["code"]))
    assert {(s, c) for _, s, c in answers} == {(400, "bad_json")}, answers
    assert len(answers) == len(NESTS) * 7
    assert (await api.ok("GET", "/v1/kiosk"))["kiosk"] == KIOSK  # still serving


@pytest.mark.parametrize("size", [5_000, 20_000])
async def test_an_oversized_authorization_header_is_refused_and_never_logged(
    api: KioskApi,
    caplog: pytest.LogCaptureFixture,
    size: int,
) -> None:
    secret = "sgw_" + "S3CRET" * (size // 6)
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
            async with api.http.post(
                api.base + "/v1/identify", data=b"{}", headers=headers
            ) as resp:
                assert resp.status == 400  # by the parser: no handler saw the request
        async with api.http.get(f"{api.base}/v1/kiosk/ws?ticket={'T1CKET' * 1000}") as resp:
            assert resp.status == 400  # a request line over the limit
    assert (await api.ok("GET", "/v1/kiosk"))["kiosk"] == KIOSK
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert "S3CRET" not in text
    assert "T1CKET" not in text
    refused = [r for r in caplog.records if "bad HTTP request refused" in r.getMessage()]
    assert len(refused) == 4
    assert all(r.exc_info is None for r in refused)


async def test_the_kiosk_socket_accepts_only_its_pages_origin(api: KioskApi) -> None:
    own = api.base  # http://127.0.0.1:PORT, where the gateway serves the page

    async def handshake(api: KioskApi, origin: str | None, token: str) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        if origin is not None:
            headers["Origin"] = origin
        try:
            async with api.http.ws_connect(api.ws_url, headers=headers) as ws:
                await ws.close()
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status

    assert await handshake(api, own, api.token) == 101
    assert await handshake(api, own.replace("http://", "HTTP://"), api.token) == 101
    assert await handshake(api, None, api.token) == 101  # not a browser: the token decides
    for foreign in ("http://evil.example", "null", own + ".evil.example", "https://127.0.0.1"):
        assert await handshake(api, foreign, api.token) == 403, foreign
    # kiosk-2 lists its origin: that one only, not even the gateway's own
    kiosk2 = api.tokens.create("kiosk-2-page", kiosk="kiosk-2")
    assert await handshake(api, "https://kiosk-2.store.example", kiosk2) == 101
    assert await handshake(api, own, kiosk2) == 403


def test_configured_origins_are_normalised_and_non_origins_refused() -> None:
    kiosk = KioskConfig(name="k", origins=("HTTPS://Gw.Local:443", "http://10.0.0.5:8080/"))
    assert kiosk.origins == ("https://gw.local", "http://10.0.0.5:8080")
    for bad in ("null", "https://gw.local/kiosk/", "ftp://gw.local", "https://user@gw.local"):
        with pytest.raises(ValueError, match="not an origin"):
            KioskConfig(name="k", origins=(bad,))
