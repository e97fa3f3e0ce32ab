"""``storegw provision doctor``: is this box ready to serve the store, and if not, what to do.

Every check gives ok, warn or fail, a one-line finding and, when it did not pass, the fix.
The checks only read: the outbox is opened read-only, the broker probe connects with its own
client id (``<client>-doctor``) so the running daemon keeps its session, and the probe message
goes to the gateway's own subtree (``{base}/doctor``), which nobody subscribes to.

Thresholds: free space on the data dir warn < 1 GiB, fail < 100 MiB; clock skew against the
cloud (RPC ``clock.now``) warn > 2 s, fail > 30 s; client certificate warn < 30 days left,
fail when expired; oldest outbox event warn > 10 min, fail > 24 h.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import sqlite3
import ssl
import stat
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from gateway.config import Config, DeviceConfigUnion
    from gateway.uplink import Uplink
    from gateway.wire.topics import Topics

Status = Literal["ok", "warn", "fail"]
_RANK: dict[Status, int] = {"ok": 0, "warn": 1, "fail": 2}

GIB = 1024**3
MIB = 1024**2
SPACE_WARN_BYTES = 1 * GIB
SPACE_FAIL_BYTES = 100 * MIB
SKEW_WARN_S = 2.0
SKEW_FAIL_S = 30.0
CERT_WARN_DAYS = 30.0
OUTBOX_WARN_S = 10 * 60.0
OUTBOX_FAIL_S = 24 * 3600.0
CONTROL_SOCKET = "control.sock"
ACL_FIX = (
    "the broker's ACL does not allow this gateway to publish under its prefix; "
    "check deploy/mosquitto/storegw.acl"
)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    finding: str
    fix: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def worst(checks: list[Check]) -> Status:
    return max((c.status for c in checks), key=_RANK.__getitem__, default="ok")


def exit_code(checks: list[Check]) -> int:
    """0: all ok; 1: something to look at (warn); 2: something is broken (fail)."""
    return _RANK[worst(checks)]


# --- local checks -------------------------------------------------------------------------------


def check_config(path: Path) -> tuple[Check, Config | None]:
    from gateway.config import ConfigError, load_config

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        problems = "; ".join(str(p) for p in exc.problems) or "unusable"
        return (
            Check(
                "config",
                "fail",
                f"{path}: {len(exc.problems)} problem(s): {problems}",
                f"fix the keys named above (storegw config check -c {path} lists them)",
            ),
            None,
        )
    return (
        Check(
            "config",
            "ok",
            f"{path}: store {cfg.gateway.store_id}, gateway {cfg.gateway.gateway_id}, "
            f"{len(cfg.devices)} device(s)",
        ),
        cfg,
    )


def check_data_dir(data_dir: Path) -> Check:  # noqa: PLR0911 - one return per finding
    try:
        st = data_dir.stat()
    except FileNotFoundError:
        return Check(
            "data dir",
            "fail",
            f"{data_dir} does not exist",
            f"run storegw provision init, or mkdir -m 0750 {data_dir}",
        )
    except OSError as exc:
        return Check("data dir", "fail", f"{data_dir}: {exc.strerror}", "check the path")
    if not stat.S_ISDIR(st.st_mode):
        return Check("data dir", "fail", f"{data_dir} is not a directory", "point data_dir at one")
    mode = stat.S_IMODE(st.st_mode)
    if not os.access(data_dir, os.W_OK | os.X_OK):
        return Check(
            "data dir",
            "fail",
            f"{data_dir} is not writable by uid {os.geteuid()} (owner uid {st.st_uid})",
            f"chown the directory to the user that runs storegw, e.g. chown -R storegw {data_dir}",
        )
    if mode & 0o002:
        return Check(
            "data dir",
            "fail",
            f"{data_dir} is world-writable (mode {mode:04o})",
            f"chmod 0750 {data_dir}",
        )
    if mode & 0o004:
        return Check(
            "data dir",
            "warn",
            f"{data_dir} is world-readable (mode {mode:04o}): the outbox holds customer events",
            f"chmod 0750 {data_dir}",
        )
    return Check("data dir", "ok", f"{data_dir} (mode {mode:04o}, owner uid {st.st_uid})")


def check_data_files(data_dir: Path) -> Check:
    """Every file directly in the data dir (databases, their -wal/-shm, caches): none may be
    readable or writable by others, none group-writable. Behind a 0750 data dir such a file is
    a warning (one chmod of the directory from exposure); in a directory others may enter it
    is a failure: member names, balances and events are readable."""
    try:
        with os.scandir(data_dir) as it:
            entries = sorted(it, key=lambda e: e.name)
        dir_mode = stat.S_IMODE(data_dir.stat().st_mode)
    except OSError as exc:
        return Check(
            "data files",
            "fail",
            f"not checked: {data_dir}: {exc.strerror}",
            "fix the data dir first; run the doctor as the user that runs storegw",
        )
    loose: dict[str, int] = {}
    count = 0
    for entry in entries:
        try:
            if not entry.is_file(follow_symlinks=False):
                continue  # the control socket, tls/ (see key files)
            mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
        except OSError:
            continue  # removed while we looked (a -wal at checkpoint)
        count += 1
        if mode & 0o027:
            loose[entry.name] = mode
    if not loose:
        return Check("data files", "ok", f"{count} file(s) in {data_dir}, none open to others")
    status: Status = "fail" if dir_mode & 0o001 else "warn"
    shown = ", ".join(f"{name} ({mode:04o})" for name, mode in loose.items())
    return Check(
        "data files",
        status,
        f"readable or writable by others: {shown}",
        "chmod 0600 " + " ".join(str(data_dir / name) for name in loose),
    )


def _key_files(cfg: Config) -> list[Path]:
    """The keys this box uses: the gateway's (needed for mqtts://, or wherever one exists)
    and the local API's TLS key."""
    from gateway.wire.certs import IdentityFiles

    keys: list[Path] = []
    identity_key = cfg.mqtt.key_file or IdentityFiles.in_data_dir(cfg.gateway.data_dir).key
    if cfg.mqtt.tls or cfg.mqtt.key_file is not None or identity_key.exists():
        keys.append(identity_key)
    if cfg.api.tls_key is not None:
        keys.append(cfg.api.tls_key)
    return keys


def check_key_files(cfg: Config) -> Check:
    problems: list[str] = []
    fixes: list[str] = []
    shown: list[str] = []
    for key in _key_files(cfg):
        try:
            mode = stat.S_IMODE(key.stat().st_mode)
        except FileNotFoundError:
            problems.append(f"{key} is missing")
            fixes.append("run storegw provision init (it creates the key, 0600)")
            continue
        except OSError as exc:
            problems.append(f"{key}: {exc.strerror}")
            fixes.append("run the doctor as the user that runs storegw")
            continue
        if mode & 0o077:
            problems.append(f"{key} has mode {mode:04o}")
            fixes.append(f"chmod 0600 {key}")
        else:
            shown.append(f"{key} ({mode:04o})")
    if problems:
        return Check("key files", "fail", "; ".join(problems), "; ".join(dict.fromkeys(fixes)))
    return Check("key files", "ok", ", ".join(shown) or "none needed (plain MQTT)")


def _size(n: int) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB else f"{n / MIB:.0f} MiB"


def check_disk(data_dir: Path, free: int | None = None) -> Check:
    if free is None:
        try:
            free = shutil.disk_usage(data_dir).free
        except OSError as exc:
            return Check("disk space", "fail", f"{data_dir}: {exc.strerror}", "create the data dir")
    finding = f"{_size(free)} free on {data_dir}"
    fix = "free space on that filesystem (old logs, journald: journalctl --vacuum-size=100M)"
    if free < SPACE_FAIL_BYTES:
        return Check("disk space", "fail", finding + " (< 100 MiB: events will be refused)", fix)
    if free < SPACE_WARN_BYTES:
        return Check("disk space", "warn", finding + " (< 1 GiB)", fix)
    return Check("disk space", "ok", finding)


def check_ntp(run: Callable[[list[str]], str | None] | None = None) -> Check:
    """The OS's own view; "unknown" (no systemd, a container) is not held against the box:
    the skew against the cloud, below, is what matters."""
    answer = (run or _timedatectl)(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
    if answer == "yes":
        return Check("clock sync", "ok", "NTP synchronised (timedatectl)")
    if answer == "no":
        return Check(
            "clock sync",
            "warn",
            "NTP not synchronised (timedatectl)",
            "timedatectl set-ntp true, and allow UDP 123 to the time servers",
        )
    return Check("clock sync", "ok", "unknown (timedatectl not available); see clock skew")


def _timedatectl(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=3, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def check_outbox(data_dir: Path, now: float | None = None) -> Check:
    path = data_dir / "outbox.db"
    if not path.exists():
        return Check("outbox", "ok", "empty (no outbox yet: the daemon has not run)")
    moment = time.time() if now is None else now
    # Read only, and leave no -wal/-shm files behind (owned by whoever runs the doctor) when
    # the daemon is not running: a cleanly closed outbox has no -wal, and nothing writes it.
    running = path.with_name(path.name + "-wal").exists()
    mode = "mode=ro" if running else "mode=ro&immutable=1"
    try:
        db = sqlite3.connect(f"{path.as_uri()}?{mode}", uri=True, timeout=5)
        try:
            depth, oldest = db.execute("SELECT count(*), min(created) FROM outbox").fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        return Check(
            "outbox",
            "fail",
            f"{path} cannot be read: {exc}",
            "check the file's owner and mode; run the doctor as the user that runs storegw",
        )
    if not depth:
        return Check("outbox", "ok", "empty: every event reached the cloud")
    age = max(0.0, moment - float(oldest))
    finding = f"{depth} event(s) waiting, oldest {_duration(age)} old"
    fix = "the events are not reaching the cloud: see the broker checks above and the daemon's log"
    if age > OUTBOX_FAIL_S:
        return Check("outbox", "fail", finding + " (> 24 h)", fix)
    if age > OUTBOX_WARN_S:
        return Check("outbox", "warn", finding + " (> 10 min)", fix)
    return Check("outbox", "ok", finding)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


# --- the broker ---------------------------------------------------------------------------------


async def check_dns(host: str, port: int, timeout: float) -> Check:
    try:
        async with asyncio.timeout(timeout):
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
    except (OSError, TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        return Check(
            "dns",
            "fail",
            f"cannot resolve {host}: {reason}",
            "check the host in [mqtt] url and the box's DNS (/etc/resolv.conf)",
        )
    addresses = sorted({str(info[4][0]) for info in infos})
    return Check("dns", "ok", f"{host} -> {', '.join(addresses)}")


async def check_tcp(host: str, port: int, timeout: float) -> Check:
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return Check(
            "tcp",
            "fail",
            f"{host}:{port}: no answer within {timeout:g} s",
            "a firewall drops the connection: allow outgoing TCP to that port",
        )
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return Check(
            "tcp",
            "fail",
            f"{host}:{port}: {reason}",
            "is the broker running on that port? check the port in [mqtt] url",
        )
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return Check("tcp", "ok", f"{host}:{port} accepts connections")


async def check_tls(cfg: Config, timeout: float) -> Check:  # noqa: PLR0911 - one per finding
    from gateway.uplink import tls_context

    mqtt = cfg.mqtt
    if not mqtt.tls:
        return Check(
            "tls",
            "warn",
            f"mqtt://{mqtt.host}:{mqtt.port} is plain MQTT: nothing is encrypted or authenticated",
            "enrol the box (storegw provision enroll) to use mqtts://",
        )
    try:
        ctx = tls_context(mqtt)
    except (OSError, ssl.SSLError) as exc:
        return Check(
            "tls",
            "fail",
            f"cannot load the CA or client certificate: {exc}",
            "check [mqtt] ca_file, cert_file, key_file (storegw provision status)",
        )
    assert ctx is not None
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(
                mqtt.host, mqtt.port, ssl=ctx, server_hostname=mqtt.host
            )
    except ssl.SSLCertVerificationError as exc:
        return Check(
            "tls",
            "fail",
            f"the broker's certificate is not trusted: {exc.verify_message}",
            "check [mqtt] ca_file (the storegw CA) and that the url's host is in the "
            "broker certificate's subjectAltName",
        )
    except TimeoutError:
        return Check("tls", "fail", f"no TLS handshake within {timeout:g} s", "is it a TLS port?")
    except (OSError, ssl.SSLError) as exc:
        return Check("tls", "fail", f"TLS handshake failed: {exc}", "is it a TLS port?")
    try:
        peer = writer.get_extra_info("peercert") or {}
        version = writer.get_extra_info("ssl_object").version()
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    subject = _rdn(peer.get("subject", ()), "commonName") or "?"
    issuer = _rdn(peer.get("issuer", ()), "commonName") or "?"
    not_after = peer.get("notAfter")
    finding = f"{version}, broker {subject!r} issued by {issuer!r}, verified"
    if isinstance(not_after, str):
        days = (ssl.cert_time_to_seconds(not_after) - time.time()) / 86400
        finding += f", valid {days:.0f} more days"
        if days < CERT_WARN_DAYS:
            return Check(
                "tls",
                "warn",
                finding,
                "tell the cloud operator: the broker's certificate expires soon",
            )
    return Check("tls", "ok", finding)


def _rdn(name: Any, key: str) -> str | None:
    for rdn in name:
        for k, v in rdn:
            if k == key:
                return str(v)
    return None


def check_client_cert(cfg: Config, now: datetime | None = None) -> Check:
    from gateway.certwatch import cert_status
    from gateway.wire.certs import IdentityError

    if cfg.mqtt.cert_file is None:
        if not cfg.mqtt.tls:
            return Check(
                "client certificate", "warn", "none (plain MQTT)", "storegw provision enroll"
            )
        return Check(
            "client certificate",
            "fail",
            "none configured: the box is not enrolled",
            "storegw provision enroll -c <config> --claim <token>",
        )
    try:
        cert = cert_status(cfg.mqtt.cert_file, now)
    except (IdentityError, OSError) as exc:
        return Check(
            "client certificate", "fail", f"{cfg.mqtt.cert_file}: {exc}", "storegw provision enroll"
        )
    days = cert.seconds_left / 86400
    finding = (
        f"{cert.subject}, serial {cert.serial:x}, valid until "
        f"{cert.not_after.isoformat(timespec='seconds')}"
    )
    if days <= 0:
        return Check(
            "client certificate",
            "fail",
            finding + " (expired)",
            "get a claim from the cloud and enrol again: storegw provision enroll --claim <token>",
        )
    if days < CERT_WARN_DAYS:
        return Check(
            "client certificate",
            "warn",
            finding + f" ({days:.1f} days left)",
            "storegw provision renew (the daemon renews by itself within cert_renew_days)",
        )
    return Check("client certificate", "ok", finding + f" ({days:.0f} days left)")


async def check_session(cfg: Config, timeout: float) -> list[Check]:
    """One MQTT session as the gateway: the ACL probe, then the cloud's clock."""
    from gateway.uplink import PublishRefused, Uplink, UplinkError
    from gateway.wire.topics import Topics

    g = cfg.gateway
    topics = Topics(cfg.mqtt.topic_prefix, g.store_id, g.gateway_id)
    client = cfg.mqtt.client_id or f"storegw-{g.store_id}-{g.gateway_id}"
    mqtt = cfg.mqtt.model_copy(
        update={"connect_timeout_s": min(cfg.mqtt.connect_timeout_s, timeout)}
    )
    probe = f"{topics.base}/doctor"
    try:
        async with asyncio.timeout(timeout * 2), Uplink(mqtt, client_id=f"{client}-doctor") as up:
            try:
                payload = json.dumps({"doctor": datetime.now(UTC).isoformat()}).encode()
                await up.publish(probe, payload, qos=1)
            except PublishRefused as exc:
                acl = Check("acl", "fail", f"publish to {probe} refused: {exc.reason}", ACL_FIX)
            else:
                acl = Check("acl", "ok", f"published to {probe} as {client}-doctor (PUBACK)")
            clock = await _skew(up, topics, cfg.mqtt.protocol, timeout)
    except (UplinkError, TimeoutError, OSError, ssl.SSLError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
        fix = (
            "the broker refused this gateway's certificate or client id: check the "
            "certificate (storegw provision status) and the broker's log"
        )
        return [
            Check("acl", "fail", f"cannot connect as the gateway: {reason}", fix),
            Check("clock skew", "warn", "not measured (no broker session)", "fix the acl check"),
        ]
    return [acl, clock]


async def _skew(  # noqa: PLR0911 - one return per finding
    up: Uplink, topics: Topics, protocol: str, timeout: float
) -> Check:
    from gateway.rpc import RpcClient, RpcError, RpcRefused

    if protocol != "5":
        return Check(
            "clock skew", "warn", "not measured (needs MQTT v5)", 'set [mqtt] protocol = "5"'
        )
    reply_topic = f"{topics.base}/doctor/reply"
    rpc = RpcClient(topics.rpc, reply_topic)

    async def send(topic: str, payload: bytes, response: str, correlation: bytes) -> None:
        await up.publish(
            topic, payload, qos=1, response_topic=response, correlation_data=correlation
        )

    async def pump() -> None:
        async for msg in up.messages():
            if msg.topic == reply_topic:
                rpc.resolve(msg.correlation_data, msg.payload)

    await up.subscribe(reply_topic)
    rpc.attach(send)
    reader = asyncio.create_task(pump())
    try:
        sent = time.time()
        try:
            data = await rpc.call("clock.now", {}, timeout=timeout)
        except RpcRefused as exc:
            return Check(
                "clock skew",
                "warn",
                f"the cloud does not tell its time ({exc.code})",
                "update the cloud service (it should answer clock.now)",
            )
        except RpcError as exc:
            return Check(
                "clock skew",
                "warn",
                f"no answer to clock.now: {exc}",
                "is the cloud service running and connected to the broker?",
            )
        received = time.time()
    finally:
        rpc.attach(None)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
    try:
        cloud = datetime.fromisoformat(str(data.get("now")).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return Check("clock skew", "warn", "the cloud's clock.now answer is malformed", None)
    skew = ((sent + received) / 2) - cloud
    finding = (
        f"box is {abs(skew):.2f} s {'ahead of' if skew >= 0 else 'behind'} the cloud "
        f"(round trip {received - sent:.2f} s)"
    )
    fix = "enable NTP (timedatectl set-ntp true) or set the clock; coupons and certificates need it"
    if abs(skew) > SKEW_FAIL_S:
        return Check("clock skew", "fail", finding + " (> 30 s)", fix)
    if abs(skew) > SKEW_WARN_S:
        return Check("clock skew", "warn", finding + " (> 2 s)", fix)
    return Check("clock skew", "ok", finding)


# --- devices ------------------------------------------------------------------------------------


async def daemon_status(socket_path: Path, timeout: float) -> dict[str, Any] | None:
    """The daemon's ``status`` over its control socket (the CLI's own client, so its limits
    and safe-JSON decode); None when no daemon answers there, or not with a status."""
    from provisioning.client import ControlClient, ControlError

    if not socket_path.exists():  # noqa: ASYNC240 - one stat of a local path
        return None
    try:
        async with ControlClient(socket_path, timeout=timeout) as client:
            result = await client.request("status", timeout=timeout)
    except ControlError:
        return None
    data = result.get("data", result)
    return data if isinstance(data, dict) else None


def _device_states(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    devices = status.get("devices")
    if isinstance(devices, dict):
        return {str(k): v for k, v in devices.items() if isinstance(v, dict)}
    if isinstance(devices, list):
        return {str(d.get("id")): d for d in devices if isinstance(d, dict)}
    return {}


async def check_devices(cfg: Config, timeout: float) -> list[Check]:
    if not cfg.devices:
        return [Check("devices", "ok", "no devices configured")]
    status = await daemon_status(cfg.gateway.data_dir / CONTROL_SOCKET, timeout)
    if status is not None:
        states = _device_states(status)
        out = [Check("daemon", "ok", "running (control socket answered)")]
        for device in cfg.devices:
            health = states.get(device.id)
            state = str(health.get("state")) if health else "not reported"
            name = f"device {device.id}"
            if state == "available":
                out.append(Check(name, "ok", f"{device.kind}: available"))
            elif state == "starting":
                out.append(Check(name, "warn", f"{device.kind}: starting", "run the doctor again"))
            else:
                reason = f" ({health.get('message') or health.get('reason')})" if health else ""
                out.append(
                    Check(
                        name,
                        "fail",
                        f"{device.kind}: {state}{reason}",
                        f"check the {device.kind}'s cable and power, and its [[devices]] entry",
                    )
                )
        return out
    out = [
        Check(
            "daemon",
            "warn",
            f"daemon not running (no answer on {cfg.gateway.data_dir / CONTROL_SOCKET}); "
            "devices checked for presence only",
            "start it: systemctl start storegw (or storegw run -c <config>)",
        )
    ]
    for device in cfg.devices:
        out.append(await _presence(device, timeout))
    return out


async def _presence(device: DeviceConfigUnion, timeout: float) -> Check:
    name = f"device {device.id}"
    try:
        async with asyncio.timeout(timeout):
            found, where = await _PRESENCE[device.kind](device)
    except TimeoutError:
        found, where = False, f"no answer within {timeout:g} s"
    if found:
        return Check(name, "ok", f"{device.kind}: {where} present")
    return Check(
        name,
        "fail",
        f"{device.kind}: {where}",
        f"check the {device.kind}'s cable and power, and its [[devices]] entry",
    )


async def _scanner(device: Any) -> tuple[bool, str]:
    port = str(device.port)
    if "://" in port:
        parts = urlsplit(port)
        if parts.scheme == "socket" and parts.hostname and parts.port:
            return await _tcp_open(parts.hostname, parts.port)
        return True, f"{port} (not checked offline)"
    present = Path(port).exists()  # noqa: ASYNC240 - one stat of a local path
    return (True, port) if present else (False, f"{port} does not exist")


async def _tcp_open(host: str, port: int) -> tuple[bool, str]:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        return False, f"{host}:{port}: {exc.strerror or exc}"
    writer.close()
    return True, f"{host}:{port}"


async def _smartcard(device: Any) -> tuple[bool, str]:
    def readers() -> list[str]:
        from smartcard.System import readers as list_readers

        return [str(r) for r in list_readers()]

    try:
        names = await asyncio.to_thread(readers)
    except Exception as exc:  # pyscard raises its own types for "no pcscd"
        return False, f"pcscd does not answer: {exc}"
    matching = [n for n in names if device.matches_reader(n)]
    if matching:
        return True, f"reader {matching[0]!r}"
    return False, f"pcscd lists no matching reader (has: {names or 'none'})"


async def _nfc(device: Any) -> tuple[bool, str]:
    def opens() -> bool:
        import nfc

        clf = nfc.ContactlessFrontend()
        try:
            return bool(clf.open(device.device))
        finally:
            clf.close()

    try:
        ok = await asyncio.to_thread(opens)
    except Exception as exc:  # nfcpy raises OSError/IOError and its own types
        return False, f"nfcpy cannot open {device.device}: {exc}"
    return (True, device.device) if ok else (False, f"nfcpy finds no reader at {device.device}")


async def _label(device: Any) -> tuple[bool, str]:
    if device.url is not None:
        parts = urlsplit(device.url)
        default = 443 if parts.scheme == "https" else 80
        return await _tcp_open(parts.hostname or "", parts.port or default)
    adapter = str(getattr(device, "adapter", None) or "hci0")
    path = Path("/sys/class/bluetooth") / adapter
    return (True, f"adapter {adapter}") if path.exists() else (False, f"no adapter {adapter}")


# --- HID scanners: there, and grabbable (EVIOCGRAB) so codes do not reach the till's window ---


async def _hid_scanner(device: Any) -> tuple[bool, str]:
    """Open and grab the node as the daemon would, then let go. Run as root, this cannot prove
    the daemon's user may open it, so the node's owner, group and mode are shown too."""
    from drivers.base import DeviceUnavailable
    from drivers.hid_scanner.transport import EventSource

    try:
        source = await EventSource.open(device.id, device)
    except DeviceUnavailable as exc:
        return False, exc.message
    await source.close()
    info = source.info
    if info.get("transport") == "fifo":
        return True, f"{source.path} (a simulator FIFO: nothing to grab)"
    owner = _owner(source.path)
    return True, f"{source.path} ({info.get('name')}, {info.get('usb_id')}, {owner}) grabbable"


def _owner(path: str) -> str:
    """``root:input 0660``: who else (the daemon's user) may open the node."""
    import grp
    import pwd

    st = os.stat(path)
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{user}:{group} {stat.S_IMODE(st.st_mode):04o}"


_PRESENCE: dict[str, Callable[[Any], Awaitable[tuple[bool, str]]]] = {
    "scanner": _scanner,
    "hid-scanner": _hid_scanner,
    "smartcard": _smartcard,
    "nfc": _nfc,
    "label": _label,
}


# --- all of it ----------------------------------------------------------------------------------


async def diagnose(config_path: Path, *, timeout: float = 5.0) -> list[Check]:
    """Every check, in the order a technician fixes things."""
    config, cfg = check_config(config_path)
    checks = [config]
    if cfg is None:
        return checks
    data_dir = cfg.gateway.data_dir
    checks += [check_data_dir(data_dir), check_data_files(data_dir), check_key_files(cfg)]
    checks += [check_disk(data_dir), check_ntp()]
    mqtt = cfg.mqtt
    dns = await check_dns(mqtt.host, mqtt.port, timeout)
    checks.append(dns)
    tcp = await check_tcp(mqtt.host, mqtt.port, timeout) if dns.status == "ok" else None
    checks.append(tcp or _blocked("tcp", "dns"))
    reachable = tcp is not None and tcp.status == "ok"
    tls = await check_tls(cfg, timeout) if reachable else _blocked("tls", "tcp")
    checks += [tls, check_client_cert(cfg)]
    if reachable and tls.status != "fail":
        session = await check_session(cfg, timeout)
    else:
        session = [
            _blocked("acl", "tls" if reachable else "tcp"),
            _blocked("clock skew", "tls" if reachable else "tcp"),
        ]
    checks += session
    checks += await check_devices(cfg, timeout)
    checks += await _hardware_checks(cfg)
    checks.append(check_outbox(data_dir))
    return checks


async def _hardware_checks(cfg: Config) -> list[Check]:
    """Reader set-up (virtual card reader, NFC drivers and udev): provisioning/doctor_hardware."""
    from provisioning.doctor_hardware import hardware_checks

    return await hardware_checks(cfg)


def _blocked(name: str, after: str) -> Check:
    return Check(name, "fail", f"not checked: the {after} check failed", f"fix {after} first")


def report_json(checks: list[Check]) -> str:
    return json.dumps(
        {
            "status": worst(checks),
            "exit_code": exit_code(checks),
            "checks": [c.as_json() for c in checks],
        },
        indent=2,
    )
