"""The scanner simulator: PtyScanner on real ptys, and `storegw sim scanner` as a process."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import serial
import typer
from typer.testing import CliRunner

from drivers.base import DeviceUnavailable
from drivers.scanner.codec import Scan, decode
from simulators.scanner import BUILTIN_CODES, GARBAGE, PtyScanner, aim_for, command, plan
from tests.support.drivers import running_scanner, scanner_config
from tests.support.paths import REPO
from tests.support.waiting import wait_for, wait_for_sync

ROOT = REPO
SCRIPT = "import typer; from simulators.scanner import command; typer.run(command)"


class Sim:
    """A running `storegw sim scanner` process: its pty path and what it said on stderr."""

    def __init__(self, proc: asyncio.subprocess.Process, path: str) -> None:
        self.proc = proc
        self.path = path
        self.stderr: list[str] = []

    async def _drain(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.stderr.append(line.decode(errors="replace").rstrip("\n"))

    async def exited(self, timeout: float = 10.0) -> int:
        async with asyncio.timeout(timeout):
            return await self.proc.wait()


@contextlib.asynccontextmanager
async def sim(*args: str) -> AsyncIterator[Sim]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SCRIPT,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    drain: asyncio.Task[None] | None = None
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(15):
            first = await proc.stdout.readline()
        s = Sim(proc, first.decode().strip())
        drain = asyncio.create_task(s._drain())
        yield s
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        if drain is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await drain


# --- PtyScanner -------------------------------------------------------------------------------


def test_reader_connected_follows_who_has_the_port_open() -> None:
    with PtyScanner() as scanner:
        assert scanner.plugged
        assert not scanner.reader_connected()
        port = serial.Serial(scanner.path, 9600, timeout=2)
        try:
            assert scanner.reader_connected()
            scanner.type("4006381333931")
            assert port.read_until(b"\r") == b"4006381333931\r"
            scanner.type("X", terminator=b"\r\n")
            assert port.read(3) == b"X\r\n"
        finally:
            port.close()
        wait_for_sync(lambda: not scanner.reader_connected(), message="reader gone")


def test_unplug_is_an_io_error_for_the_reader() -> None:
    scanner = PtyScanner()
    port = serial.Serial(scanner.path, 9600, timeout=2)
    try:
        scanner.unplug()
        scanner.unplug()  # idempotent
        assert not scanner.plugged
        assert not scanner.reader_connected()
        with pytest.raises(serial.SerialException):
            port.read(1)
    finally:
        port.close()
    with pytest.raises(OSError, match="unplugged"):
        scanner.type("X")


def test_context_manager_unplugs() -> None:
    with PtyScanner() as scanner:
        port = serial.Serial(scanner.path, 9600, timeout=2)
    try:
        assert not scanner.plugged
        with pytest.raises(serial.SerialException):
            port.read(1)
    finally:
        port.close()


def test_type_gives_up_when_nobody_reads() -> None:
    with PtyScanner() as scanner, pytest.raises(TimeoutError, match="nobody is reading"):
        scanner.type(b"x" * 200_000, timeout=0.2)


def test_builtin_codes_decode_as_what_they_claim() -> None:
    expected = ["ean-13", "gs1-128", "qr", "code128", "gs1-datamatrix"]
    for (aim_id, code), symbology in zip(BUILTIN_CODES, expected, strict=True):
        result = decode((aim_id + code).encode(), aim_prefix=True)
        assert isinstance(result, Scan)
        assert (result.code, result.symbology) == (code, symbology)
        if symbology.startswith(("ean", "gs1")):
            assert result.gs1 is not None, code
            assert result.gs1["gtin"], code


@pytest.mark.parametrize(
    ("code", "aim_id"),
    [
        ("4006381333931", "]E0"),
        ("036000291452", "]E0"),
        ("96385074", "]E4"),
        ("19506000134359", "]I1"),
        ("01095060001343521725123110ABC", "]C1"),
        ("0109506000134352\x1d10AB", "]C1"),
        ("https://member.example.com/m/1", "]Q1"),
        ("COUPON", "]C0"),
        ("]d2already", ""),
    ],
)
def test_aim_for(code: str, aim_id: str) -> None:
    assert aim_for(code) == aim_id


def test_plan(tmp_path: Path) -> None:
    assert list(plan(["A", "B<GS>C"])) == [(None, "A"), (None, "B\x1dC")]
    assert list(plan(["A", "B"], count=5)) == [(None, c) for c in "ABABA"]
    codes_file = tmp_path / "codes.txt"
    codes_file.write_text("F1\n\nF2\r\n", encoding="utf-8")
    assert list(plan(["A"], codes_file)) == [(None, "A"), (None, "F1"), (None, "F2")]
    assert list(plan(count=7)) == list(itertools.islice(itertools.cycle(BUILTIN_CODES), 7))
    forever = plan()
    assert [next(forever) for _ in range(12)] == list(
        itertools.islice(itertools.cycle(BUILTIN_CODES), 12)
    )


# --- the CLI ----------------------------------------------------------------------------------


async def test_cli_types_the_given_codes_once_a_reader_is_there(tmp_path: Path) -> None:
    async with sim("4006381333931", "0109506000134352<GS>10LOT7", "--exit") as s:
        assert s.path.startswith("/dev/pts/")
        async with running_scanner(scanner_config(s.path), tmp_path) as h:
            await wait_for(lambda: len(h.readings) == 2, timeout=10, message="two scans")
            assert h.codes() == ["4006381333931", "0109506000134352\x1d10LOT7"]
            assert await s.exited() == 0
            assert isinstance(await h.stopped(), DeviceUnavailable)  # the pty went with it
    assert "typed 2 line(s); exiting" in s.stderr


async def test_cli_builtin_list_with_rate_count_aim_garbage_and_lf(tmp_path: Path) -> None:
    args = ("--rate", "50", "--count", "6", "--aim", "--garbage", "--terminator", "lf", "--exit")
    async with sim(*args) as s:
        cfg = scanner_config(s.path, aim_prefix=True, terminator="LF")
        async with running_scanner(cfg, tmp_path) as h:
            await wait_for(lambda: len(h.readings) == 7, timeout=10, message="6 scans, 1 error")
            kinds = [r.kind for r in h.readings]
            assert kinds == ["scan"] * 5 + ["error", "scan"]
            aims = [r.data["aim_id"] for r in h.of("scan")]
            assert aims == ["]E0", "]C1", "]Q1", "]C0", "]d2", "]E0"]
            assert h.codes() == [
                code for _, code in itertools.islice(itertools.cycle(BUILTIN_CODES), 6)
            ]
            assert h.readings[5].data["preview_hex"] == GARBAGE[0].hex()
            assert await s.exited() == 0


async def test_cli_reads_a_file_and_sends_crlf(tmp_path: Path) -> None:
    codes_file = tmp_path / "codes.txt"
    codes_file.write_text("]E04006381333931\nplain text\n", encoding="utf-8")
    async with sim("--file", str(codes_file), "--terminator", "CRLF", "--exit") as s:
        cfg = scanner_config(s.path, terminator="CRLF", aim_prefix=True)
        async with running_scanner(cfg, tmp_path) as h:
            await wait_for(lambda: len(h.readings) == 2, timeout=10, message="two scans")
            assert [r.data for r in h.readings] == [
                {
                    "code": "4006381333931",
                    "symbology": "ean-13",
                    "aim_id": "]E0",
                    "gs1": {"gtin": "04006381333931", "hri": None, "elements": []},
                },
                {"code": "plain text"},
            ]
            assert await s.exited() == 0


async def test_cli_keeps_the_port_until_ctrl_c(tmp_path: Path) -> None:
    async with sim("ONLY-ONE") as s, running_scanner(scanner_config(s.path), tmp_path) as h:
        await wait_for(lambda: h.codes() == ["ONLY-ONE"], timeout=10, message="the scan")
        await wait_for(
            lambda: any("until Ctrl-C" in line for line in s.stderr), message="idle message"
        )
        assert s.proc.returncode is None
        assert h.task is not None
        assert not h.task.done()
        s.proc.send_signal(signal.SIGINT)
        assert await s.exited() == 0
        assert isinstance(await h.stopped(), DeviceUnavailable)
    assert "stopped" in s.stderr


async def test_cli_waits_for_a_reader_that_comes_late(tmp_path: Path) -> None:
    async with sim("LATE", "--exit") as s:
        await wait_for(
            lambda: any("waiting for a reader" in line for line in s.stderr),
            message="waiting message",
        )
        async with running_scanner(scanner_config(s.path), tmp_path) as h:
            await wait_for(lambda: h.codes() == ["LATE"], timeout=10, message="the scan")
            assert await s.exited() == 0


def test_command_mounts_in_a_typer_app() -> None:
    app = typer.Typer()
    app.command("scanner")(command)
    app.command("other")(lambda: None)  # two commands, so "scanner" is a subcommand
    runner = CliRunner()
    helped = runner.invoke(app, ["scanner", "--help"])
    assert helped.exit_code == 0, helped.output
    for option in ("--file", "--rate", "--count", "--terminator", "--aim", "--garbage", "--exit"):
        assert option in helped.output
    ran = runner.invoke(app, ["scanner", "X", "--no-wait", "--exit"])
    assert ran.exit_code == 0, ran.output
    path = ran.stdout.splitlines()[0]
    assert path.startswith("/dev/pts/")
    assert "typed 'X'" in ran.stderr


def test_gateway_cli_mounts_the_simulator() -> None:
    from storegw.cli import app, mount_simulators

    mount_simulators(["sim", "scanner", "--help"])
    result = CliRunner().invoke(app, ["sim", "scanner", "--help"])
    assert result.exit_code == 0, result.output
    assert "--garbage" in result.output
