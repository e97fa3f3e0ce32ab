"""The provisioning CLI reads answers from peers it does not control: the daemon's control
socket (or whatever listens on its path), a label AP during ``devices scan`` and the cloud's
enrolment answer. Hostile or broken answers are a plain finding for the technician, never a
traceback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import ValidationError

from core import safejson
from drivers.label.probes import scan_oepl
from gateway.wire.enrolment import MAX_RESPONSE_BYTES, EnrollResponse, decode_response
from provisioning.client import MAX_ANSWER_BYTES, CommandFailed, ControlClient, ControlError
from provisioning.doctor.devices import daemon_status
from simulators.broker import free_port

DEEP = b"[" * 100_000
"""json.loads raised RecursionError on this (no except ValueError catches it)."""
TAG = {"mac": "0000021B3C4D5E6F", "alias": "aisle 3", "hwType": 51, "lastseen": 1796400000}


@asynccontextmanager
async def answering(path: Path, answer: bytes) -> AsyncIterator[Path]:
    """A unix socket at ``path`` that reads one line and answers ``answer``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(serve, str(path))
    try:
        yield path
    finally:
        server.close()
        await server.wait_closed()


BAD_ANSWERS = {
    "deep": DEEP + b"\n",
    "not json": b"hello\n",
    "not an object": b"[1, 2]\n",
    "no ok": b'{"data": {}}\n',
    "lone surrogate": b'{"ok": true, "data": {"a": "\\ud800"}}\n',
    "over the limit": b"x" * (MAX_ANSWER_BYTES + 10) + b"\n",
}


@pytest.mark.parametrize("answer", BAD_ANSWERS.values(), ids=BAD_ANSWERS.keys())
async def test_a_bad_control_answer_is_a_control_error(tmp_path: Path, answer: bytes) -> None:
    async with answering(tmp_path / "control.sock", answer) as path:
        with pytest.raises(ControlError) as caught:
            async with ControlClient(path, timeout=5) as client:
                await client.call("status")
    assert "status: " in str(caught.value)
    async with answering(tmp_path / "control.sock", answer) as path:
        assert await daemon_status(path, timeout=5) is None  # the doctor probes devices itself


async def test_a_refusal_with_a_malformed_error_is_still_a_command_failure(
    tmp_path: Path,
) -> None:
    async with answering(tmp_path / "control.sock", b'{"ok": false, "error": "boom"}\n') as path:
        with pytest.raises(CommandFailed) as caught:
            async with ControlClient(path, timeout=5) as client:
                await client.call("status")
    assert caught.value.code == "error"


async def test_the_doctor_reads_a_good_status(tmp_path: Path) -> None:
    answer = json.dumps({"ok": True, "data": {"devices": {"scanner-1": {"state": "available"}}}})
    async with answering(tmp_path / "control.sock", answer.encode() + b"\n") as path:
        status = await daemon_status(path, timeout=5)
    assert status == {"devices": {"scanner-1": {"state": "available"}}}


@asynccontextmanager
async def access_point(body: Callable[[int], bytes]) -> AsyncIterator[str]:
    """An HTTP server on a free port answering ``GET /get_db?pos=N`` with ``body(N)``."""

    async def get_db(request: web.Request) -> web.Response:
        return web.Response(body=body(int(request.query.get("pos", "0"))))

    app = web.Application()
    app.router.add_get("/get_db", get_db)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


BAD_PAGES: dict[str, Callable[[int], bytes]] = {
    "deep": lambda pos: DEEP,
    "not json": lambda pos: b"<html>router login</html>",
    "a list": lambda pos: b"[1, 2]",
    "tags of strings": lambda pos: b'{"tags": "abc"}',
    "a tag that is no object": lambda pos: b'{"tags": [1]}',
    "continu that goes back": lambda pos: json.dumps({"tags": [TAG], "continu": 1}).encode(),
}


@pytest.mark.parametrize("page", BAD_PAGES.values(), ids=BAD_PAGES.keys())
async def test_a_label_scan_of_something_that_is_no_ap_is_a_finding(
    page: Callable[[int], bytes],
) -> None:
    async with access_point(page) as host:
        result = await scan_oepl(host, timeout=5)
    assert result.status.startswith(f"not an OpenEPaperLink AP: http://{host} ("), result.status
    assert result.found == []


async def test_a_label_scan_pages_through_the_ap_like_the_driver() -> None:
    second = {**TAG, "mac": "0000021b3c4d5e70", "alias": ""}
    pages = {
        0: json.dumps({"tags": [TAG], "continu": 1}).encode(),
        1: json.dumps({"tags": [second]}).encode(),
    }
    async with access_point(pages.__getitem__) as host:
        result = await scan_oepl(host, timeout=5)
    assert result.status == "ok"
    assert [(f.where, f.detail) for f in result.found] == [
        ("0000021B3C4D5E6F", f"aisle 3 hwType 51 at http://{host}"),
        ("0000021B3C4D5E70", f"hwType 51 at http://{host}"),
    ]


async def test_a_label_scan_of_a_closed_port_is_unreachable() -> None:
    result = await scan_oepl(f"127.0.0.1:{free_port()}", timeout=5)
    assert result.status.startswith("unreachable: "), result.status


REFUSAL = {"v": 1, "nonce": "n-1", "ok": False}
BAD_ENROL_ANSWERS = {
    "deep": DEEP,
    "deep in the ca": b'{"v": 1, "nonce": "n-1", "ok": true, "ca": ' + DEEP + b"}",
    # pydantic alone took these two: an infinite wait, and an answer of any size
    "infinite retry": json.dumps(
        {**REFUSAL, "error": {"code": "rate_limited", "message": "wait", "retry_after_s": 1}}
    )
    .encode()
    .replace(b'"retry_after_s": 1', b'"retry_after_s": 1e400'),
    "oversized": json.dumps({**REFUSAL, "ca": "A" * MAX_RESPONSE_BYTES}).encode(),
    "lone surrogate": b'{"v": 1, "nonce": "\\ud800", "ok": true}',
    "not an answer": b'{"nonce": "n-1"}',
}


@pytest.mark.parametrize("payload", BAD_ENROL_ANSWERS.values(), ids=BAD_ENROL_ANSWERS.keys())
def test_a_hostile_enrolment_answer_is_refused_with_a_value_error(payload: bytes) -> None:
    """``provision enroll`` ignores such an answer (logged) and waits for the real one."""
    with pytest.raises((safejson.BadJson, ValidationError)):
        decode_response(payload)


def test_a_real_enrolment_answer_decodes() -> None:
    answer = EnrollResponse(nonce="n-1", ok=True, ca="PEM", broker_url="mqtts://cloud:8883")
    assert decode_response(answer.model_dump_json().encode()) == answer
