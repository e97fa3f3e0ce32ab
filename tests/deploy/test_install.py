"""``scripts/install.sh``: the production install a technician runs on a fresh Debian box,
checked through its ``--root`` layout (no systemd as PID 1 needed)."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from tests.support.installed import INSTALL, Installed, run_install


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _group(root: Path, name: str) -> list[str]:
    for line in (root / "etc/group").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return [m for m in fields[3].split(",") if m]
    raise AssertionError(f"no group {name}")


def test_the_daemon_gets_a_system_user_in_its_device_groups(installed: Installed) -> None:
    passwd = {
        line.split(":")[0]: line.split(":")
        for line in (installed.root / "etc/passwd").read_text().splitlines()
    }
    user = passwd["storegw"]
    assert int(user[2]) < 1000  # a system account
    assert user[5:] == ["/var/lib/storegw", "/usr/sbin/nologin"]
    for group in ("dialout", "input", "plugdev"):
        assert "storegw" in _group(installed.root, group)


def test_the_unit_finds_its_venv_and_the_reader_files_are_in_place(installed: Installed) -> None:
    root = installed.root
    unit = (root / "etc/systemd/system/storegw.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    binary = root / exec_start.split("=", 1)[1].split()[0].lstrip("/")
    assert binary == root / "opt/storegw/venv/bin/storegw"
    assert _mode(binary) & 0o111
    rules = (root / "etc/udev/rules.d/60-storegw-nfc.rules").read_text()
    for vid_pid in ('"054c", ATTRS{idProduct}=="06c3"', '"072f", ATTRS{idProduct}=="2200"'):
        assert vid_pid in rules  # RC-S380/P, ACR122U (nfcpy's USB table)
    assert "223b" not in rules  # ACR1252U (072f:223b) is a PC/SC reader: pcscd drives it
    blacklist = (root / "etc/modprobe.d/storegw-nfc-blacklist.conf").read_text().splitlines()
    assert {"blacklist port100", "blacklist pn533_usb", "blacklist pn533"} <= set(blacklist)


def test_config_is_private_and_systemd_makes_the_state_dirs(installed: Installed) -> None:
    root = installed.root
    assert _mode(root / "etc/storegw") == 0o750
    assert _mode(root / "etc/storegw/storegw.toml") == 0o640
    # StateDirectory=/LogsDirectory= create these with the right owner at start: not by hand
    assert not (root / "var/lib/storegw").exists()
    assert not (root / "var/log/storegw").exists()


def test_a_smartcard_config_wants_pcscd_and_nothing_installs_vpcd(
    installed: Installed,
    tmp_path: Path,
) -> None:
    dropin = installed.root / "etc/systemd/system/storegw.service.d/pcscd.conf"
    assert "Wants=pcscd.socket" in dropin.read_text().splitlines()
    assert not (installed.root / "etc/reader.conf.d").exists()

    def packages(*args: str) -> list[str]:
        done = subprocess.run(
            ["bash", str(INSTALL), "--print-packages", *args],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.split()

    plain, cards = packages("--no-smartcard"), packages("--smartcard")
    always = {"fonts-wqy-microhei", "fonts-dejavu-core", "python3-venv", "linux-libc-dev"}
    for found in (plain, cards):
        assert "vsmartcard-vpcd" not in found
        assert always <= set(found)
    assert "pcscd" not in plain
    assert "pcscd" in cards

    # without a smart-card reader: no pcscd drop-in
    config = tmp_path / "plain.toml"
    config.write_text('[gateway]\nstore_id = "S1"\ngateway_id = "g"\n[mqtt]\nurl = "mqtt://x"\n')
    root = tmp_path / "root"
    done = run_install(root, "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert not (root / "etc/systemd/system/storegw.service.d/pcscd.conf").exists()


def test_it_refuses_to_run_as_a_user_on_the_real_root() -> None:
    done = subprocess.run(  # the script on stdin: nobody may not read the checkout
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", "-s"],
        input=INSTALL.read_text(),
        cwd="/",
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "run as root" in done.stderr


def test_remote_config_makes_the_config_directory_writable_unless_left_off(
    installed: Installed,
    tmp_path: Path,
) -> None:
    """config.set renames a new file over the config and keeps a .bak beside it: the unit must
    let the daemon write the config's own directory, and only there."""
    units = installed.root / "etc/systemd/system"
    unit = (units / "storegw.service").read_text().splitlines()
    exec_start = next(line for line in unit if line.startswith("ExecStart=")).split()
    config_dir = str(Path(exec_start[exec_start.index("-c") + 1]).parent)
    dropin = (units / "storegw.service.d/remote-config.conf").read_text().splitlines()
    writable = [line.split("=", 1)[1] for line in dropin if line.startswith("ReadWritePaths=")]
    assert writable == [config_dir]
    assert "ProtectSystem=strict" in unit  # without the drop-in the directory is read-only

    config = tmp_path / "plain.toml"
    config.write_text('[gateway]\nstore_id = "S1"\ngateway_id = "g"\n[mqtt]\nurl = "mqtt://x"\n')
    root = tmp_path / "root"
    done = run_install(root, "--config", str(config), "--no-remote-config")
    assert done.returncode == 0, done.stderr
    assert not (root / "etc/systemd/system/storegw.service.d/remote-config.conf").exists()
