"""The scanner driver end to end on real pseudo-terminals (and a real TCP socket:// port)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.events import Priority
from drivers import registry
from drivers.base import DeviceUnavailable
from drivers.scanner.config import ScannerConfig
from drivers.scanner.driver import ScannerDriver
from simulators.scanner import PtyScanner
from tests.support.drivers import run_unopened, running_scanner, scanner_config
from tests.support.waiting import wait_for

GTIN = "09506000134352"


async def test_codes_arrive_in_order_as_scan_readings(scanner: PtyScanner, tmp_path: Path) -> None:
    codes = ["4006381333931", "COUPON-SPRING-10", "Grüße 🛒", "01" + GTIN + "10AB\x1d21X", " a b "]
    async with running_scanner(scanner_config(scanner.path), tmp_path) as h:
        for code in codes:
            scanner.type(code)
        await wait_for(lambda: len(h.readings) == len(codes), message="all scans")
        assert h.codes() == codes
        assert all(r.kind == "scan" and r.priority == Priority.HIGH for r in h.readings)
        assert h.readings[0].data == {
            "code": "4006381333931",
            "gs1": {"gtin": "04006381333931", "hri": None, "elements": []},
        }
        assert h.readings[1].data == {"code": "COUPON-SPRING-10"}
        assert h.driver.health() == {"port": scanner.path, "scans": 5, "errors": 0}


@pytest.mark.parametrize(
    ("terminator", "pieces"),
    [("CR", [b"\r"]), ("LF", [b"\n"]), ("CRLF", [b"\r", b"\n"]), ("CRLF", [b"\r\n"])],
)
async def test_terminators_even_when_split_across_writes(
    scanner: PtyScanner, tmp_path: Path, terminator: str, pieces: list[bytes]
) -> None:
    async with running_scanner(scanner_config(scanner.path, terminator=terminator), tmp_path) as h:
        for code in ["A1", "B2", "C3"]:
            scanner.type(code[0], terminator=b"")
            scanner.type(code[1], terminator=b"")
            for piece in pieces:
                scanner.type(piece, terminator=b"")
        await wait_for(lambda: len(h.readings) >= 3, message="three scans")
        assert h.codes() == ["A1", "B2", "C3"]
        assert h.of("error") == []


async def test_the_default_config_reads_a_crlf_scanner(scanner: PtyScanner, tmp_path: Path) -> None:
    """CR+LF (a common factory suffix) needs no terminator setting."""
    cfg = scanner_config(scanner.path)
    assert cfg.terminator == "auto"
    async with running_scanner(cfg, tmp_path) as h:
        for code in ["4006381333931", "COUPON-10", "5901234123457"]:
            scanner.type(code, terminator=b"\r\n")
        scanner.type("LONE-LF", terminator=b"\n")
        scanner.type("LONE-CR", terminator=b"\r")
        await wait_for(lambda: len(h.readings) >= 5, message="five scans")
        assert h.codes() == ["4006381333931", "COUPON-10", "5901234123457", "LONE-LF", "LONE-CR"]
        assert h.of("error") == []


async def test_garbage_is_an_error_event_and_the_next_code_still_arrives(
    scanner: PtyScanner, tmp_path: Path
) -> None:
    async with running_scanner(scanner_config(scanner.path), tmp_path) as h:
        scanner.type(b"\xff\xfe garbled")
        scanner.type(b"NO\x07READ")
        scanner.type("5901234123457")
        await wait_for(lambda: len(h.readings) == 3, message="two errors and a scan")
        utf8, control, good = h.readings
        assert utf8.kind == "error"
        assert utf8.priority == Priority.HIGH
        assert utf8.data == {
            "reason": "invalid_utf8",
            "message": "not UTF-8 (byte 0xff at offset 0)",
            "length": 10,
            "preview_hex": b"\xff\xfe garbled".hex(),
        }
        assert control.data["reason"] == "control_bytes"
        assert control.data["preview_hex"] == b"NO\x07READ".hex()
        assert good.kind == "scan"
        assert good.data["code"] == "5901234123457"
        assert h.driver.health()["errors"] == 2
        assert h.driver.health()["scans"] == 1


async def test_an_endless_line_is_one_error_and_bounded(
    scanner: PtyScanner, tmp_path: Path
) -> None:
    async with running_scanner(scanner_config(scanner.path, max_line_bytes=64), tmp_path) as h:
        scanner.type(b"A" * 5000 + b"B" * 5000)
        scanner.type("OK")
        await wait_for(lambda: len(h.readings) == 2, message="an error and a scan")
        bad, good = h.readings
        assert bad.data["reason"] == "line_too_long"
        assert bad.data["length"] == 65
        assert bad.data["preview_hex"] == "41" * 32
        assert good.data == {"code": "OK"}


async def test_aim_ids_and_gs1_end_to_end(scanner: PtyScanner, tmp_path: Path) -> None:
    cfg = scanner_config(scanner.path, aim_prefix=True, terminator="CRLF")
    async with running_scanner(cfg, tmp_path) as h:
        scanner.type("]C101" + GTIN + "17251231" + "10ABC123", terminator=b"\r\n")
        scanner.type("]Q1https://member.example.com/m/M100042", terminator=b"\r\n")
        scanner.type("no prefix here", terminator=b"\r\n")
        await wait_for(lambda: len(h.readings) == 3, message="three scans")
        gs1, qr, plain = (r.data for r in h.readings)
        assert gs1["code"] == "01" + GTIN + "17251231" + "10ABC123"
        assert gs1["symbology"] == "gs1-128"
        assert gs1["aim_id"] == "]C1"
        assert isinstance(gs1["gs1"], dict)
        assert gs1["gs1"]["gtin"] == GTIN
        assert qr == {
            "code": "https://member.example.com/m/M100042",
            "symbology": "qr",
            "aim_id": "]Q1",
        }
        assert plain == {"code": "no prefix here"}


async def test_unplug_raises_device_unavailable_and_replug_works(tmp_path: Path) -> None:
    first = PtyScanner()
    try:
        async with running_scanner(scanner_config(first.path), tmp_path) as h:
            first.type("BEFORE")
            await wait_for(lambda: h.codes() == ["BEFORE"], message="first scan")
            first.type(b"half a li", terminator=b"")
            first.unplug()
            exc = await h.stopped()
            assert isinstance(exc, DeviceUnavailable)
            assert exc.reason == "port_lost"
            assert exc.device_id == "till-1-scanner"
            assert h.codes() == ["BEFORE"]  # the half line is dropped, not emitted
        # (re-opening first.path is not asserted: a concurrent process may get that pty number;
        # test_open_fails_cleanly_when_the_port_is_not_there covers a missing port)
    finally:
        first.unplug()
    with PtyScanner() as second:  # replugged (maybe under a new name)
        async with running_scanner(scanner_config(second.path), tmp_path) as h:
            second.type("AFTER")
            await wait_for(lambda: h.codes() == ["AFTER"], message="scan after replug")


async def test_open_fails_cleanly_when_the_port_is_not_there(tmp_path: Path) -> None:
    driver = ScannerDriver(scanner_config(str(tmp_path / "ttyACM9")), data_dir=tmp_path)
    assert driver.health() == {"port": str(tmp_path / "ttyACM9"), "scans": 0, "errors": 0}
    with pytest.raises(DeviceUnavailable) as info:
        async with driver:
            pass
    assert info.value.reason == "port_unavailable"
    assert "ttyACM9" in info.value.message


async def test_unknown_url_scheme_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DeviceUnavailable) as info:
        await ScannerDriver(scanner_config("nosuch://x"), data_dir=tmp_path).open()
    assert info.value.reason == "bad_port"


async def test_a_second_reader_on_the_same_tty_is_refused(
    scanner: PtyScanner, tmp_path: Path
) -> None:
    async with running_scanner(scanner_config(scanner.path), tmp_path) as h:
        with pytest.raises(DeviceUnavailable) as info:
            await ScannerDriver(scanner_config(scanner.path), data_dir=tmp_path).open()
        assert info.value.reason == "port_unavailable"
        scanner.type("STILL-MINE")
        await wait_for(lambda: h.codes() == ["STILL-MINE"], message="first reader keeps working")


async def test_run_before_open_is_unavailable(tmp_path: Path) -> None:
    refused = await run_unopened(ScannerDriver(scanner_config("/dev/null"), data_dir=tmp_path))
    assert refused.reason == "not_open"


async def test_socket_url_reads_codes_and_eof_is_unavailable(tmp_path: Path) -> None:
    connected = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def serve(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        connected.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        cfg = scanner_config(f"socket://127.0.0.1:{port}", terminator="LF")
        async with running_scanner(cfg, tmp_path) as h:
            async with asyncio.timeout(5):
                await connected.wait()
            writers[0].write(b"4006381333931\nCOUP")
            writers[0].write(b"ON\n")
            await writers[0].drain()
            await wait_for(lambda: len(h.readings) == 2, message="two scans over TCP")
            assert h.codes() == ["4006381333931", "COUPON"]
            writers[0].close()
            exc = await h.stopped()
            assert isinstance(exc, DeviceUnavailable)
            assert exc.reason == "port_lost"
    finally:
        for w in writers:
            w.close()
        server.close()
        await server.wait_closed()


async def test_socket_url_refused_is_unavailable(tmp_path: Path) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(DeviceUnavailable) as info:
        await ScannerDriver(scanner_config(f"socket://127.0.0.1:{port}"), data_dir=tmp_path).open()
    assert info.value.reason == "port_unavailable"


def test_registry_serves_the_scanner_driver() -> None:
    cls = registry.driver_class("scanner")
    assert cls is ScannerDriver
    assert cls.kind == "scanner"
    assert cls.config_model is ScannerConfig
    assert cls.actions == frozenset()
