"""The control socket against a real in-process Gateway, a real broker and a scanner on a pty."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
from pathlib import Path

import pytest

from gateway.daemon import Gateway
from provisioning.client import CommandFailed, ControlClient, DaemonNotRunning, call
from simulators.broker import MosquittoBroker
from simulators.scanner import PtyScanner
from tests.support.config import make_config
from tests.support.daemon import Daemon, daemon_config
from tests.support.gateway import running
from tests.support.waiting import eventually, wait_for


async def test_socket_is_private_answers_lines_and_goes_away(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(data / "control.sock"))  # left by a killed daemon: nobody listens
    stale.close()
    gw = Gateway(make_config(broker.url, data))
    sock = data / "control.sock"
    async with running(gw, connected=True):
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        reader, writer = await asyncio.open_unix_connection(str(sock))
        try:
            writer.write(b'{"command": "ping", "args": {"echo": "hi"}}\n')
            writer.write(b"not json\n")
            writer.write(b'{"args": {}}\n')
            writer.write(b'{"command": "nope"}\n')
            await writer.drain()
            answers = [json.loads(await reader.readline()) for _ in range(4)]
        finally:
            writer.close()
        assert answers[0]["ok"]
        assert answers[0]["data"]["echo"] == "hi"
        assert answers[1]["error"]["code"] == "bad_json"
        assert answers[2]["error"]["code"] == "bad_request"
        assert answers[3]["error"]["code"] == "unknown_command"
        status = await call(sock, "status")
        assert status["store_id"] == "S001"
        with pytest.raises(CommandFailed) as failed:
            await call(sock, "device.test", {"device": "ghost", "timeout_s": 1})
        assert failed.value.code == "bad_args"
        with pytest.raises(CommandFailed) as too_long:
            await call(sock, "device.test", {"device": "ghost", "timeout_s": 61})
        assert too_long.value.code == "bad_args"
    assert not sock.exists()
    with pytest.raises(DaemonNotRunning, match="the daemon is not running"):
        await call(sock, "ping")


async def test_device_test_returns_the_next_scan(broker: MosquittoBroker, tmp_path: Path) -> None:
    with PtyScanner() as scanner:
        devices = [{"id": "scanner-1", "kind": "scanner", "port": scanner.path}]
        gw = Gateway(make_config(broker.url, tmp_path / "d", devices))
        async with running(gw, connected=True):
            await asyncio.to_thread(scanner.wait_for_reader, 5)
            await wait_for(
                lambda: gw.devices["scanner-1"].health.state == "available", message="scanner up"
            )
            path = gw.config.gateway.data_dir / "control.sock"
            async with ControlClient(path) as client:
                waiting = asyncio.create_task(
                    client.call("device.test", {"device": "scanner-1", "timeout_s": 5}, timeout=8)
                )
                await wait_for(
                    lambda: gw.device_tests.waiting["scanner-1"] == 1 or waiting.done(),
                    message="wait",
                )
                assert not waiting.done(), waiting.result()
                scanner.type("4006381333931")
                result = await waiting
                assert result["kind"] == "scan"
                assert result["data"]["code"] == "4006381333931"
                with pytest.raises(CommandFailed) as timeout:
                    await client.call("device.test", {"device": "scanner-1", "timeout_s": 0.2})
                assert timeout.value.code == "timeout"
            assert gw.device_tests.waiting["scanner-1"] == 0


async def test_a_second_daemon_on_the_same_data_dir_refuses(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    cfg = make_config(broker.url, tmp_path)
    async with running(Gateway(cfg), connected=True):
        with pytest.raises(ExceptionGroup) as group:
            async with asyncio.timeout(10):
                await Gateway(cfg).run()
        assert "another gateway" in str(group.value.exceptions[0])
        assert (tmp_path / "control.sock").exists()


async def test_a_deep_data_dir_still_gets_a_socket(broker: MosquittoBroker, tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    gw = Gateway(make_config(broker.url, deep))
    async with running(gw, connected=True):
        assert (await call(deep / "control.sock", "ping"))["pong"] is True
    assert os.listdir(deep)
    assert not (deep / "control.sock").exists()


async def test_the_daemon_process_serves_it_and_removes_it_on_sigterm(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    sock = data / "control.sock"
    with Daemon(daemon_config(broker.url, data), tmp_path) as proc:
        await wait_for(sock.exists, timeout=20, message="control socket")
        assert (await call(sock, "ping", {"echo": "tech"}))["echo"] == "tech"
        await eventually(
            lambda: call(sock, "status"), lambda s: s["mqtt"]["connected"], timeout=10
        )  # SIGTERM during the first connect can overrun the grace period (reported)
        proc.signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 10) == 0, proc.log()
    assert not sock.exists()
