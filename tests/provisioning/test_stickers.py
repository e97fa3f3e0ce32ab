"""``storegw provision sticker`` against emulated NTAGs on nfcpy's udp device (real nfcpy on both
sides), as a technician writes a roll of stickers, verifies one and locks one."""

from __future__ import annotations

import asyncio
import json
import stat
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from drivers.nfc.codec import (
    StickerKey,
    build_sticker_url,
    encode_ndef_message,
    mirror_text,
    uri_record,
    verify_sticker_url,
)
from simulators.nfc import EmulatedNtag, NfcTagSimulator
from storegw.cli import app
from tests.support.config import write_config
from tests.support.daemon import REPO
from tests.support.ports import free_udp_port

runner = CliRunner()
BASE = "t.example.com"
UID1, UID2, UID3 = (bytes.fromhex(f"04a1b2c3d4e5{i:02x}") for i in (1, 2, 3))


CLOUD_KEY = StickerKey(bytes(range(0x40, 0x60)), "k1")
"""What the cloud issued for S001 (its key file is what the technician installs)."""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = write_config(tmp_path)
    issued = tmp_path / "S001-k1.key"
    issued.write_text(CLOUD_KEY.file_text())
    installed = runner.invoke(
        app, ["provision", "sticker", "key-install", str(issued), "-c", str(path)]
    )
    assert installed.exit_code == 0, installed.output
    return path


def test_the_key_comes_from_the_cloud_and_is_never_shown(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    missing = runner.invoke(app, ["provision", "sticker", "key-show", "-c", str(path)])
    assert missing.exit_code == 1
    assert "install the key the cloud issued" in missing.stderr
    issued = tmp_path / "S001-k1.key"
    issued.write_text(CLOUD_KEY.file_text())
    installed = runner.invoke(
        app, ["provision", "sticker", "key-install", str(issued), "-c", str(path)]
    )
    assert installed.exit_code == 0, installed.output
    assert "sticker key k1 installed" in installed.stdout
    key_file = tmp_path / "data" / "sticker.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    shown = runner.invoke(app, ["provision", "sticker", "key-show", "-c", str(path)])
    assert shown.stdout.strip() == "k1"
    secret = CLOUD_KEY.file_text().split(":")[1].strip()
    for result in (installed, shown):
        assert secret not in result.output
    bad = tmp_path / "bad.key"
    bad.write_text("k1:zz")
    refused = runner.invoke(app, ["provision", "sticker", "key-install", str(bad), "-c", str(path)])
    assert refused.exit_code == 1
    assert "zz" not in refused.output


async def invoke(*args: str) -> Result:
    return await asyncio.to_thread(runner.invoke, app, list(args))


def key_of(tmp_path: Path) -> StickerKey:
    return StickerKey.from_file(tmp_path / "data" / "sticker.key")


async def test_a_roll_of_stickers_then_verify(config: Path, tmp_path: Path) -> None:
    port = free_udp_port()
    first, second = EmulatedNtag(UID1, "NTAG213"), EmulatedNtag(UID2, "NTAG213")
    with NfcTagSimulator(port, first) as sim:
        # A process, as on site: the technician swaps stickers when it asks for the next one.
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "storegw", "provision", "sticker", "write", "--batch", "2",
            "--placement", "counter-{n:02d}", "--device", sim.path, "--base", BASE,
            "--timeout", "15", "-c", str(config),
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            lines: list[str] = []
            async with asyncio.timeout(30):
                while not lines or not lines[-1].startswith("[2/2]"):
                    line = await proc.stdout.readline()
                    assert line, "".join(lines)
                    lines.append(line.decode())
                sim.present(second)
                rest, _ = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        out = "".join(lines) + rest.decode()
        assert proc.returncode == 0, out
        assert "[1/2] place the sticker for counter-01 on the reader" in out
        assert f"{UID1.hex()}\tcounter-01\tok" in out
        assert f"{UID2.hex()}\tcounter-02\tok" in out
        assert first.ndef
        key_file = tmp_path / "data" / "sticker.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        secret = key_file.read_text().strip()
        assert secret not in out
        key = key_of(tmp_path)
        assert key.key_id == "k1"
        url = build_sticker_url(BASE, "S001", "counter-02", UID2, key)
        assert second.ndef == encode_ndef_message([uri_record(url)])
        mirrored = url.replace("00000000000000x000000", mirror_text(UID2, 5).decode())
        assert verify_sticker_url(mirrored, UID2, key).placement == "counter-02"

        verified = await invoke(
            "provision", "sticker", "verify", "--device", sim.path, "--base", BASE,
            "--json", "-c", str(config),
        )  # fmt: skip
        assert verified.exit_code == 0, verified.output
        doc = json.loads(_json_tail(verified.stdout))
        assert (doc["uid"], doc["placement"], doc["valid"]) == (UID2.hex(), "counter-02", True)
        assert secret not in verified.output

        sim.present(EmulatedNtag(UID3, "NTAG213"))  # a blank one
        blank = await invoke(
            "provision", "sticker", "verify", "--device", sim.path, "--base", BASE,
            "-c", str(config),
        )  # fmt: skip
        assert blank.exit_code == 1
        assert "NO (" in blank.stdout


def _json_tail(text: str) -> str:
    """The JSON document after the "place the sticker..." line."""
    return text[text.index("{") :]


async def test_lock_needs_yes_and_then_locks(config: Path, tmp_path: Path) -> None:
    port = free_udp_port()
    tag = EmulatedNtag(UID1, "NTAG213")
    c = ["--base", BASE, "-c", str(config)]
    with NfcTagSimulator(port, tag) as sim:
        refused = await invoke(
            "provision", "sticker", "write", "--placement", "door", "--lock", "--device",
            sim.path, *c,
        )  # fmt: skip
        assert refused.exit_code == 2
        assert "pass --yes" in refused.stderr
        assert not tag.ndef
        written = await invoke(
            "provision", "sticker", "write", "--placement", "door", "--device", sim.path, *c
        )
        assert written.exit_code == 0, written.output
        assert not tag.locked
        no = await invoke("provision", "sticker", "lock", "--device", sim.path, *c)
        assert no.exit_code == 2
        assert not tag.locked
        locked = await invoke("provision", "sticker", "lock", "--yes", "--device", sim.path, *c)
        assert locked.exit_code == 0, locked.output
        assert f"sticker {UID1.hex()} (door) locked" in locked.stdout
        assert tag.locked


async def test_mistakes_are_messages(config: Path) -> None:
    gone = await invoke(
        "provision", "sticker", "verify", "--device", "usb", "--base", BASE, "--timeout", "1",
        "-c", str(config),
    )  # fmt: skip
    assert gone.exit_code == 1
    assert "cannot open NFC reader 'usb'" in gone.stderr
    assert "Traceback" not in gone.output
    both = await invoke(
        "provision", "sticker", "write", "--placement", "x", "--protect", "--lock", "--yes",
        "--base", BASE, "-c", str(config),
    )  # fmt: skip
    assert both.exit_code == 2
    help_text = await invoke("provision", "sticker", "write", "--help")
    assert "Example" in help_text.stdout
