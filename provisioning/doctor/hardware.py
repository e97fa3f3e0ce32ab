"""Doctor checks of the box's reader set-up: no virtual card reader on a store box, and NFC
readers free of kernel drivers and open to the daemon's user.

* **Virtual card reader** (only with a ``smartcard`` device): vsmartcard's vpcd makes TCP
  35963/35964 a card reader on every interface (frankmorgner/vsmartcard
  ``virtualsmartcard/src/vpcd/vpcd.c`` ``opensock()``, commit a858628), so anyone on the store
  LAN could present a "member card". Installed (``/etc/reader.conf.d/vpcd``), listed by pcscd
  or listening, it fails unless ``[gateway] test_box = true``.
* **pcscd socket** (smart card, where storegw.service is installed): the unit starts pcscd's
  socket only through the drop-in ``scripts/install.sh`` writes for a smart-card reader.
* **NFC set-up** (per ``nfc`` device on USB or a serial port): nfcpy drives USB readers from
  user space, so the kernel's NFC drivers must not hold them (nfcpy ``src/nfc/__main__.py``
  ``usb_device_found_is_busy``: blacklist ``port100``, ``pn533_usb``, ``pn533``), and the
  daemon's user needs the device node (``usb_device_access_denied``: a udev rule giving it to
  ``plugdev``); nfcpy 1.0.4, commit 8a19526. Each missing piece is named with its fix.

* **Certificate renewal** (only when it would fail): the daemon rewrites ``cert_file`` next
  to itself (``gateway/wire/certs.py`` ``write_atomic``), and under ``deploy/storegw.service``
  only the data dir (``StateDirectory=``) is writable; a certificate under ``/etc/storegw``
  would expire unrenewed.

Paths are read under ``root`` so tests can lay out a box in a temporary directory.
"""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path
from typing import TYPE_CHECKING

from drivers.smartcard.config import is_virtual_reader
from provisioning.doctor.checks import Check

if TYPE_CHECKING:
    from gateway.config import Config

DAEMON_USER = "storegw"
VPCD_CONF = "etc/reader.conf.d/vpcd"
VPCD_PORTS = (35963, 35964)
PCSCD_SOCKET = "run/pcscd/pcscd.comm"
UNIT = "etc/systemd/system/storegw.service"
PCSCD_DROPIN = "etc/systemd/system/storegw.service.d/pcscd.conf"
NFC_MODULES = ("port100", "pn533_usb", "pn533")
UDEV_RULE = "etc/udev/rules.d/60-storegw-nfc.rules"
MODPROBE_DIR = "etc/modprobe.d"
INSTALL = "sudo bash scripts/install.sh (README: Running the daemon)"
VPCD_FIX = (
    "remove the virtual reader: apt-get purge vsmartcard-vpcd && systemctl restart pcscd "
    "(on a lab or demo box: [gateway] test_box = true)"
)


async def hardware_checks(cfg: Config, *, root: Path = Path("/")) -> list[Check]:
    """The reader set-up checks that apply to the configured devices (none, often)."""
    checks: list[Check] = []
    if any(d.kind == "smartcard" for d in cfg.devices):
        readers = await asyncio.to_thread(pcsc_readers, root)
        checks.append(check_virtual_reader(cfg, readers, root=root))
        socket = check_pcscd_wanted(root)
        if socket is not None:
            checks.append(socket)
    renewal = check_renewal_writable(cfg)
    if renewal is not None:
        checks.append(renewal)
    user = daemon_user(root)
    for device in cfg.devices:
        if device.kind == "nfc":
            check = check_nfc_setup(device.id, str(getattr(device, "device", "")), user, root=root)
            if check is not None:
                checks.append(check)
    return checks


# --- virtual card reader --------------------------------------------------------------


def pcsc_readers(root: Path = Path("/")) -> list[str] | None:
    """Reader names pcscd lists; None when it does not run (it is not started for this)."""
    if not (root / PCSCD_SOCKET).exists():
        return None
    from drivers.smartcard.readers import PcscdAbsent, list_readers

    try:
        return list_readers()
    except PcscdAbsent:
        return None


def vpcd_listening(root: Path = Path("/")) -> list[int]:
    """vpcd's ports that listen in this network namespace (``/proc/net/tcp``, state 0A)."""
    wanted = {f"{port:04X}": port for port in VPCD_PORTS}
    found: set[int] = set()
    for table in ("proc/net/tcp", "proc/net/tcp6"):
        try:
            lines = (root / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 3 and cols[3] == "0A":
                port = wanted.get(cols[1].rsplit(":", 1)[-1])
                if port is not None:
                    found.add(port)
    return sorted(found)


def check_virtual_reader(cfg: Config, readers: list[str] | None, *, root: Path) -> Check:
    seen: list[str] = []
    if (root / VPCD_CONF).exists():
        seen.append(f"vsmartcard-vpcd is installed (/{VPCD_CONF})")
    virtual = [name for name in readers or [] if is_virtual_reader(name)]
    if virtual:
        seen.append(f"pcscd lists {', '.join(virtual)}")
    ports = vpcd_listening(root)
    if ports:
        seen.append(f"TCP {', '.join(map(str, ports))} listen(s) for virtual cards")
    if not seen:
        return Check("virtual card reader", "ok", "none (no vsmartcard-vpcd)")
    finding = "; ".join(seen)
    if cfg.gateway.test_box:
        return Check("virtual card reader", "ok", f"{finding} (allowed: test_box = true)")
    return Check(
        "virtual card reader",
        "fail",
        f"{finding}: anyone on the store LAN can present a card to pcscd",
        VPCD_FIX,
    )


def check_pcscd_wanted(root: Path = Path("/")) -> Check | None:
    """With the unit installed, a smart-card reader needs its ``Wants=pcscd.socket`` drop-in
    (a reader added after the install has none); None where storegw.service is not installed."""
    if not (root / UNIT).exists():
        return None
    try:
        wanted = "Wants=pcscd.socket" in (root / PCSCD_DROPIN).read_text().splitlines()
    except OSError:
        wanted = False
    if wanted:
        return Check("pcscd socket", "ok", f"storegw.service wants pcscd.socket (/{PCSCD_DROPIN})")
    return Check(
        "pcscd socket",
        "warn",
        "a smart-card reader is configured but storegw.service does not start pcscd.socket",
        f"re-run {INSTALL}: it adds /{PCSCD_DROPIN}",
    )


# --- certificate renewal --------------------------------------------------------------


def check_renewal_writable(cfg: Config) -> Check | None:
    """A warning when renewal would write outside the data dir; None when all is well."""
    cert = cfg.mqtt.cert_file
    if cert is None or cfg.mqtt.cert_renew_days == 0:
        return None
    data_dir = cfg.gateway.data_dir.absolute()
    if cert.absolute().is_relative_to(data_dir):
        return None
    return Check(
        "certificate renewal",
        "warn",
        f"renewal rewrites {cert}, outside {data_dir}: storegw.service lets the daemon write "
        "only its data dir, so the certificate would expire unrenewed",
        f"move the certificate and key to {data_dir / 'tls'} and point [mqtt] cert_file and "
        "key_file there",
    )


# --- NFC readers ----------------------------------------------------------------------


def daemon_user(root: Path = Path("/")) -> str:
    """``storegw`` where the production install made it, else whoever runs the doctor."""
    return DAEMON_USER if DAEMON_USER in _passwd_users(root) else getpass.getuser()


def _passwd_users(root: Path) -> set[str]:
    try:
        lines = (root / "etc/passwd").read_text().splitlines()
    except OSError:
        return set()
    return {line.split(":", 1)[0] for line in lines if ":" in line}


def _group_members(root: Path, group: str) -> set[str] | None:
    """Members of ``group`` (from /etc/group and primary groups); None when it is missing."""
    try:
        groups = [line.split(":") for line in (root / "etc/group").read_text().splitlines()]
        users = [line.split(":") for line in (root / "etc/passwd").read_text().splitlines()]
    except OSError:
        return None
    for fields in groups:
        if len(fields) >= 4 and fields[0] == group:
            members = {m for m in fields[3].split(",") if m}
            members |= {u[0] for u in users if len(u) > 3 and u[3] == fields[2]}
            return members
    return None


def blacklisted_modules(root: Path = Path("/")) -> set[str]:
    found: set[str] = set()
    for conf in sorted((root / MODPROBE_DIR).glob("*.conf")):
        try:
            text = conf.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if len(words) == 2 and words[0] == "blacklist":
                found.add(words[1])
    return found


def _missing_for_usb(user: str, root: Path) -> list[tuple[str, str]]:
    missing: list[tuple[str, str]] = []
    if not (root / UDEV_RULE).exists():
        missing.append((f"no udev rule /{UDEV_RULE}", INSTALL))
    unlisted = [m for m in NFC_MODULES if m not in blacklisted_modules(root)]
    if unlisted:
        missing.append(
            (
                f"kernel drivers not blacklisted: {', '.join(unlisted)}",
                f"{INSTALL}; it installs /etc/modprobe.d/storegw-nfc-blacklist.conf",
            )
        )
    loaded = [m for m in NFC_MODULES if (root / "sys/module" / m).exists()]
    if loaded:
        missing.append(
            (f"kernel drivers loaded: {', '.join(loaded)}", f"sudo modprobe -r {' '.join(loaded)}")
        )
    missing += _missing_group(user, "plugdev", root)
    return missing


def _missing_group(user: str, group: str, root: Path) -> list[tuple[str, str]]:
    members = _group_members(root, group)
    if members is not None and user in members:
        return []
    return [(f"user {user} is not in group {group}", f"sudo usermod -aG {group} {user}")]


def check_nfc_setup(device_id: str, path: str, user: str, *, root: Path) -> Check | None:
    """None for nfcpy's udp simulator: nothing to set up."""
    kind = path.split(":", 1)[0]
    if kind == "usb":
        missing = _missing_for_usb(user, root)
    elif kind in ("tty", "com"):
        missing = _missing_group(user, "dialout", root)
    else:
        return None
    name = f"nfc set-up {device_id}"
    if not missing:
        return Check(name, "ok", f"{path}: udev rule, driver blacklist and groups in place")
    return Check(
        name,
        "fail",
        f"{path}: " + "; ".join(finding for finding, _ in missing),
        "; ".join(dict.fromkeys(fix for _, fix in missing)),
    )


__all__ = [
    "blacklisted_modules",
    "check_nfc_setup",
    "check_pcscd_wanted",
    "check_renewal_writable",
    "check_virtual_reader",
    "daemon_user",
    "hardware_checks",
    "pcsc_readers",
    "vpcd_listening",
]
