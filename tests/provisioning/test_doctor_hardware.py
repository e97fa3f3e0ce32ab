"""``provision doctor``'s reader set-up checks: a virtual card reader on a store box fails,
and an NFC reader's missing udev rule, driver blacklist or group is named with its fix.

The virtual reader is the real one (pcscd + vsmartcard-vpcd, tests/support/pcsc.py); the NFC set-up
is checked on the box ``scripts/install.sh --root`` lays out (tests/support/installed.py) and on an
empty root.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.config import load_config
from provisioning.doctor.hardware import (
    check_nfc_setup,
    check_pcscd_wanted,
    check_renewal_writable,
    check_virtual_reader,
    daemon_user,
    hardware_checks,
    pcsc_readers,
)
from simulators.broker import free_port
from storegw.cli import app
from tests.support.installed import Installed
from tests.support.pcsc import READER_0

CARDS = '\n[[devices]]\nid = "till-1-cards"\nkind = "smartcard"\n'


@pytest.fixture
def installed_box(installed: Installed, tmp_path: Path) -> Path:
    """A copy of the installed box's /etc that a test may change."""
    root = tmp_path / "box"
    shutil.copytree(installed.root / "etc", root / "etc", symlinks=True)
    return root


def box(tmp_path: Path, devices: str = CARDS, *, test_box: bool = False) -> Path:
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o750)
    flag = "test_box = true\n" if test_box else ""
    config = tmp_path / "storegw.toml"
    config.write_text(
        f'[gateway]\nstore_id = "S001"\ngateway_id = "gw-1"\ndata_dir = "{data}"\n{flag}'
        f'\n[mqtt]\nurl = "mqtt://127.0.0.1:{free_port()}"\nconnect_timeout_s = 1\n{devices}'
    )
    return config


def test_a_virtual_reader_pcscd_lists_fails_a_store_box(pcscd: object, tmp_path: Path) -> None:
    readers = pcsc_readers()
    assert readers is not None
    assert READER_0 in readers
    clean_root = tmp_path / "root"  # no vpcd package files: the listed reader alone fails
    clean_root.mkdir()
    store = load_config(box(tmp_path / "store"))
    check = check_virtual_reader(store, readers, root=clean_root)
    assert check.status == "fail"
    assert READER_0 in check.finding
    assert check.fix is not None
    assert "apt-get purge vsmartcard-vpcd" in check.fix

    lab = load_config(box(tmp_path / "lab", test_box=True))
    assert check_virtual_reader(lab, readers, root=clean_root).status == "ok"
    assert check_virtual_reader(store, ["ACS ACR1252 1S CL Reader 00 00"], root=clean_root) == (
        check_virtual_reader(store, None, root=clean_root)
    )
    assert check_virtual_reader(store, None, root=clean_root).status == "ok"


def test_an_installed_vpcd_package_fails_even_when_pcscd_is_stopped(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/reader.conf.d").mkdir(parents=True)
    (root / "etc/reader.conf.d/vpcd").write_text('FRIENDLYNAME "Virtual PCD"\n')
    check = check_virtual_reader(load_config(box(tmp_path)), None, root=root)
    assert check.status == "fail"
    assert "vsmartcard-vpcd is installed" in check.finding


def test_the_cli_says_so_on_this_box(pcscd: object, tmp_path: Path) -> None:
    config = box(tmp_path)
    result = CliRunner().invoke(app, ["provision", "doctor", "-c", str(config), "--timeout", "1"])
    assert result.exit_code == 2
    line = next(x for x in result.output.splitlines() if "virtual card reader" in x)
    assert line.startswith("fail")
    assert "apt-get purge vsmartcard-vpcd" in result.output


def test_no_smartcard_or_nfc_device_means_no_reader_checks(tmp_path: Path) -> None:
    cfg = load_config(box(tmp_path, devices=""))
    assert asyncio.run(hardware_checks(cfg, root=tmp_path)) == []


def test_nfc_set_up_names_each_missing_piece(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "etc").mkdir(parents=True)
    (empty / "etc/passwd").write_text("storegw:x:996:996::/var/lib/storegw:/usr/sbin/nologin\n")
    (empty / "etc/group").write_text("plugdev:x:46:\nstoregw:x:996:\n")
    (empty / "sys/module/port100").mkdir(parents=True)
    check = check_nfc_setup("counter-nfc", "usb:054c:06c3", daemon_user(empty), root=empty)
    assert check is not None
    assert check.status == "fail"
    assert "no udev rule /etc/udev/rules.d/60-storegw-nfc.rules" in check.finding
    assert "not blacklisted: port100, pn533_usb, pn533" in check.finding
    assert "kernel drivers loaded: port100" in check.finding
    assert "user storegw is not in group plugdev" in check.finding
    assert check.fix is not None
    assert "sudo modprobe -r port100" in check.fix
    assert "sudo usermod -aG plugdev storegw" in check.fix
    assert check_nfc_setup("sim", "udp:127.0.0.1:5000", "storegw", root=empty) is None
    serial = check_nfc_setup("pn532", "tty:USB0:pn532", "storegw", root=empty)
    assert serial is not None
    assert "not in group dialout" in serial.finding


def test_the_installed_box_passes_until_a_driver_grabs_the_reader(
    installed_box: Path, tmp_path: Path
) -> None:
    root = installed_box
    cfg = load_config(box(tmp_path, '\n[[devices]]\nid = "nfc"\nkind = "nfc"\ndevice = "usb"\n'))
    checks = asyncio.run(hardware_checks(cfg, root=root))
    assert [(c.name, c.status) for c in checks] == [("nfc set-up nfc", "ok")], checks
    (root / "sys/module/pn533_usb").mkdir(parents=True)
    again = asyncio.run(hardware_checks(cfg, root=root))
    assert again[0].status == "fail"
    assert again[0].fix == "sudo modprobe -r pn533_usb"


def test_a_certificate_renewal_cannot_write_is_a_warning(tmp_path: Path) -> None:
    config = box(tmp_path, devices="")
    data = tmp_path / "data"
    inside = config.read_text().replace(
        "connect_timeout_s = 1\n",
        f'connect_timeout_s = 1\ncert_file = "{data}/tls/gw.pem"\nkey_file = "{data}/tls/gw.key"\n',
    )
    config.write_text(inside)
    assert check_renewal_writable(load_config(config)) is None
    config.write_text(inside.replace(f"{data}/tls/gw.pem", "/etc/storegw/gw.pem"))
    check = check_renewal_writable(load_config(config))
    assert check is not None
    assert check.status == "warn"
    assert "/etc/storegw/gw.pem" in check.finding
    assert check.fix is not None
    assert f"{data}/tls" in check.fix


def test_a_reader_added_after_the_install_is_told_to_rerun_it(
    installed_box: Path, tmp_path: Path
) -> None:
    root = installed_box
    ok = check_pcscd_wanted(root)
    assert ok is not None
    assert ok.status == "ok"
    (root / "etc/systemd/system/storegw.service.d/pcscd.conf").unlink()
    missing = check_pcscd_wanted(root)
    assert missing is not None
    assert missing.status == "warn"
    assert missing.fix is not None
    assert "scripts/install.sh" in missing.fix
    assert check_pcscd_wanted(tmp_path / "no-unit") is None
