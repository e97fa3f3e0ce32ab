"""``storegw provision doctor`` against the real parts: Mosquitto with deploy/mosquitto/ (mTLS
and the ACLs), the cloud simulator answering ``clock.now``, a real outbox, pseudo-terminals
for scanners and the daemon in-process with its control socket.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from core.events import Reading
from gateway.config import load_config
from gateway.daemon import Gateway
from gateway.outbox import Outbox
from provisioning.doctor.checks import Check, exit_code
from provisioning.doctor.devices import check_devices
from provisioning.doctor.files import (
    GIB,
    MIB,
    check_data_dir,
    check_data_files,
    check_disk,
    check_key_files,
    check_ntp,
    check_outbox,
)
from provisioning.doctor.network import check_client_cert
from provisioning.doctor.run import diagnose
from provisioning.doctor.session import ACL_FIX, check_session
from simulators.broker import MosquittoBroker, free_port
from simulators.cloud.enrollment import CloudPki, CloudStack, cloud_stack
from storegw.cli import app
from tests.support.gateway import running
from tests.support.pty import Pty
from tests.support.waiting import wait_for


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[CloudStack]:
    async with cloud_stack(tmp_path / "cloud") as s:
        yield s


def write_box(
    box: Path,
    url: str,
    *,
    ca: Path | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    devices: str = "",
    store: str = "S001",
    gateway: str = "gw-1",
) -> Path:
    """A box's config and its data dir (0750), as provision init + enroll leave them."""
    data = box / "data"
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o750)
    mqtt = f'url = "{url}"\nconnect_timeout_s = 3\nkeepalive_s = 5\n'
    for name, path in (("ca_file", ca), ("cert_file", cert), ("key_file", key)):
        if path is not None:
            mqtt += f'{name} = "{path}"\n'
    config = box / "storegw.toml"
    config.write_text(
        f'[gateway]\nstore_id = "{store}"\ngateway_id = "{gateway}"\ndata_dir = "{data}"\n\n'
        f"[mqtt]\n{mqtt}\n[supervisor]\nretry_min_s = 0.05\nretry_max_s = 0.5\n{devices}"
    )
    return config


def enrolled_box(
    stack: CloudStack,
    box: Path,
    *,
    cn: tuple[str, str] = ("S001", "gw-1"),
    valid_for: timedelta = timedelta(days=365),
    devices: str = "",
) -> Path:
    files = stack.pki.issue_files(cn[0], cn[1], box / "data" / "tls", valid_for)
    return write_box(
        box, stack.broker.url, ca=files.ca, cert=files.cert, key=files.key, devices=devices
    )


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


async def cli(*args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


def scanner(port: str) -> str:
    return f'\n[[devices]]\nid = "scanner-1"\nkind = "scanner"\nport = "{port}"\n'


# --- a ready box ------------------------------------------------------------------------------


async def test_a_ready_box_is_all_ok_and_the_daemon_keeps_its_session(
    stack: CloudStack, tmp_path: Path
) -> None:
    config = enrolled_box(stack, tmp_path / "box")
    gateway = Gateway(load_config(config))
    async with running(gateway):
        await wait_for(gateway.bridge.connected.is_set, timeout=10, message="daemon connected")
        checks = await diagnose(config, timeout=5)
        assert [c.name for c in checks] == [
            "config", "data dir", "data files", "key files", "disk space", "clock sync", "dns",
            "tcp", "tls", "client certificate", "acl", "clock skew", "devices", "outbox",
        ]  # fmt: skip
        assert all(c.status == "ok" for c in checks), checks
        assert exit_code(checks) == 0
        found = by_name(checks)
        assert "storegw/v1/S001/gw-1/doctor" in found["acl"].finding
        assert "verified" in found["tls"].finding
        assert "ahead of" in found["clock skew"].finding or "behind" in found["clock skew"].finding
        assert gateway.bridge.connected.is_set()
    log = stack.broker.log_file.read_text()
    assert " as storegw-S001-gw-1-doctor " in log  # its own client id ...
    assert "already connected" not in log  # ... so the daemon was never kicked off


async def test_the_cli_prints_plain_lines_and_json_and_no_secrets(
    stack: CloudStack, tmp_path: Path
) -> None:
    config = enrolled_box(stack, tmp_path / "box")
    plain = await cli("provision", "doctor", "-c", str(config))
    assert plain.exit_code == 0, plain.output
    assert "ok    acl: published to storegw/v1/S001/gw-1/doctor" in plain.output
    key_text = (tmp_path / "box" / "data" / "tls" / "gateway.key").read_text()
    assert "PRIVATE KEY" not in plain.output
    assert key_text.splitlines()[1] not in plain.output
    as_json = await cli("provision", "doctor", "-c", str(config), "--json")
    assert as_json.exit_code == 0, as_json.output
    doc = json.loads(as_json.stdout)
    assert doc["status"] == "ok"
    assert doc["exit_code"] == 0
    assert {c["name"] for c in doc["checks"]} >= {"acl", "clock skew", "tls", "outbox"}


# --- the broker and the identity --------------------------------------------------------------


async def test_a_gateway_the_acl_refuses_is_told_to_check_the_acl(
    stack: CloudStack, tmp_path: Path
) -> None:
    # The certificate says gw-2, the config gw-1: the broker confines it to S001/gw-2/#.
    config = enrolled_box(stack, tmp_path / "box", cn=("S001", "gw-2"))
    result = await cli("provision", "doctor", "-c", str(config), "--json")
    assert result.exit_code == 2, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["acl"]["status"] == "fail"
    assert "refused" in checks["acl"]["finding"]
    assert checks["acl"]["fix"] == ACL_FIX
    assert "deploy/mosquitto/storegw.acl" in ACL_FIX
    assert checks["tls"]["status"] == "ok"


async def test_clock_skew_against_the_cloud(stack: CloudStack, tmp_path: Path) -> None:
    cfg = load_config(enrolled_box(stack, tmp_path / "box"))
    real = stack.cloud.clock

    def shifted(seconds: float) -> Callable[[], datetime]:
        return lambda: real() + timedelta(seconds=seconds)

    for offset, status in ((0, "ok"), (10, "warn"), (-10, "warn"), (60, "fail"), (-60, "fail")):
        stack.cloud.clock = shifted(offset)
        acl, skew = await check_session(cfg, timeout=5)
        assert acl.status == "ok"
        assert skew.status == status, (offset, skew)
        if offset > 0:
            assert "behind the cloud" in skew.finding
        if status != "ok":
            assert skew.fix is not None
            assert "NTP" in skew.fix


async def test_no_cloud_service_means_the_skew_is_not_measured(tmp_path: Path) -> None:
    pki = CloudPki.open(tmp_path / "pki")
    from simulators.cloud.enrollment import DeployedBroker

    broker = DeployedBroker(pki, tmp_path / "broker", die_with_parent=True)
    broker.start()
    try:
        files = pki.issue_files("S001", "gw-1", tmp_path / "box" / "data" / "tls", timedelta(1))
        config = write_box(
            tmp_path / "box", broker.url, ca=files.ca, cert=files.cert, key=files.key
        )
        acl, skew = await check_session(load_config(config), timeout=1)
    finally:
        broker.kill()
    assert acl.status == "ok"
    assert skew.status == "warn"
    assert "no answer to clock.now" in skew.finding
    # A certificate with a day left: renew.
    cert = check_client_cert(load_config(config))
    assert cert.status == "warn"
    assert cert.fix is not None
    assert "provision renew" in cert.fix


async def test_unreachable_unresolvable_and_untrusted_brokers(
    stack: CloudStack, tmp_path: Path
) -> None:
    closed = write_box(tmp_path / "closed", f"mqtts://localhost:{free_port()}")
    found = by_name(await diagnose(closed, timeout=2))
    assert found["dns"].status == "ok"
    assert found["tcp"].status == "fail"
    assert found["tls"].status == "fail"
    assert "not checked" in found["tls"].finding
    assert found["acl"].status == "fail"
    assert found["client certificate"].status == "fail"
    assert "not enrolled" in found["client certificate"].finding

    nowhere = write_box(tmp_path / "nowhere", "mqtts://no-such-broker.invalid:8883")
    found = by_name(await diagnose(nowhere, timeout=2))
    assert found["dns"].status == "fail"
    assert found["dns"].fix is not None
    assert "resolv.conf" in found["dns"].fix
    assert "not checked" in found["tcp"].finding

    other_ca = CloudPki.open(tmp_path / "other-pki")
    files = stack.pki.issue_files("S001", "gw-1", tmp_path / "untrusted" / "tls", timedelta(9))
    untrusted = write_box(
        tmp_path / "untrusted", stack.broker.url, ca=other_ca.ca_file, cert=files.cert,
        key=files.key,
    )  # fmt: skip
    checks = await diagnose(untrusted, timeout=3)
    found = by_name(checks)
    assert found["tcp"].status == "ok"
    assert found["tls"].status == "fail"
    assert "not trusted" in found["tls"].finding
    assert found["acl"].status == "fail"
    assert exit_code(checks) == 2


def test_certificate_expiry_thresholds(tmp_path: Path) -> None:
    pki = CloudPki.open(tmp_path / "pki")
    files = pki.issue_files("S001", "gw-1", tmp_path / "tls", timedelta(days=40))
    cfg = load_config(
        write_box(tmp_path / "box", "mqtts://localhost:1", ca=files.ca, cert=files.cert,
                  key=files.key)
    )  # fmt: skip
    now = datetime.now(UTC)
    assert check_client_cert(cfg, now).status == "ok"
    soon = check_client_cert(cfg, now + timedelta(days=15))
    assert soon.status == "warn"
    assert "days left" in soon.finding
    expired = check_client_cert(cfg, now + timedelta(days=41))
    assert expired.status == "fail"
    assert "expired" in expired.finding
    assert expired.fix is not None
    assert "enroll" in expired.fix


# --- the config and the box itself ------------------------------------------------------------


async def test_config_mistakes_are_a_failure_with_every_problem_and_no_traceback(
    tmp_path: Path,
) -> None:
    missing = await cli("provision", "doctor", "-c", str(tmp_path / "missing.toml"))
    assert missing.exit_code == 2
    assert "fail  config:" in missing.output
    assert "cannot read" in missing.output
    assert "Traceback" not in missing.output

    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[gateway]\nstore_id = "S 1"\ngateway_id = "gw-1"\n[mqtt]\nurl = "http://x"\nbogus = 1\n'
    )
    result = await cli("provision", "doctor", "-c", str(bad))
    assert result.exit_code == 2
    for key in ("2 problem(s)", "gateway.store_id", "mqtt.bogus"):
        assert key in result.output
    assert "storegw config check" in result.output
    assert "Traceback" not in result.output


def test_data_dir_key_files_and_disk_space(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert check_data_dir(data).status == "fail"
    data.mkdir()
    data.chmod(0o750)
    assert check_data_dir(data).status == "ok"
    data.chmod(0o755)
    readable = check_data_dir(data)
    assert readable.status == "warn"
    assert readable.fix == f"chmod 0750 {data}"
    data.chmod(0o777)
    assert check_data_dir(data).status == "fail"
    data.chmod(0o750)

    plain = load_config(write_box(tmp_path, "mqtt://127.0.0.1:1883"))
    assert check_key_files(plain).status == "ok"  # no TLS, no key needed
    cfg = load_config(write_box(tmp_path, "mqtts://localhost:8883"))
    missing = check_key_files(cfg)
    assert missing.status == "fail"
    assert missing.fix is not None
    assert "provision init" in missing.fix
    key = data / "tls" / "gateway.key"
    key.parent.mkdir()
    key.write_text("-----BEGIN PRIVATE KEY-----\nnot really\n")
    key.chmod(0o644)
    loose = check_key_files(cfg)
    assert loose.status == "fail"
    assert loose.fix == f"chmod 0600 {key}"
    assert "not really" not in loose.finding
    key.chmod(0o600)
    assert check_key_files(cfg).status == "ok"

    assert check_disk(data).status == "ok"  # this machine has room
    assert check_disk(data, free=2 * GIB).status == "ok"
    assert check_disk(data, free=GIB - 1).status == "warn"
    assert check_disk(data, free=100 * MIB - 1).status == "fail"


def test_data_files_open_to_others_are_named_with_the_fix(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o750)
    data.chmod(0o750)
    for name in ("outbox.db", "outbox.db-wal", "counter.db"):
        (data / name).write_bytes(b"")
        (data / name).chmod(0o600)
    (data / "tls").mkdir(mode=0o700)  # a directory: the key files check looks inside
    assert check_data_files(data).status == "ok"
    assert check_data_dir(data).status == "ok"  # the directory alone says nothing about these
    (data / "outbox.db-wal").chmod(0o644)
    (data / "counter.db").chmod(0o660)
    shielded = check_data_files(data)
    assert shielded.status == "warn"  # nobody else can enter a 0750 directory yet
    assert "outbox.db-wal (0644)" in shielded.finding
    assert "counter.db (0660)" in shielded.finding
    assert "outbox.db (" not in shielded.finding
    assert shielded.fix == f"chmod 0600 {data / 'counter.db'} {data / 'outbox.db-wal'}"
    data.chmod(0o755)
    assert check_data_files(data).status == "fail"  # readable by every user of the box
    (data / "counter.db").chmod(0o640)  # a deliberate group read is fine
    (data / "outbox.db-wal").chmod(0o600)
    assert check_data_files(data).status == "ok"
    assert check_data_files(tmp_path / "missing").status == "fail"


def test_ntp_as_timedatectl_reports_it() -> None:
    assert check_ntp(lambda argv: "yes").status == "ok"
    no = check_ntp(lambda argv: "no")
    assert no.status == "warn"
    assert no.fix is not None
    assert "set-ntp" in no.fix
    unknown = check_ntp(lambda argv: None)
    assert unknown.status == "ok"
    assert "unknown" in unknown.finding
    seen: list[list[str]] = []

    def record(argv: list[str]) -> str | None:
        seen.append(argv)
        return None

    check_ntp(record)
    assert seen == [["timedatectl", "show", "-p", "NTPSynchronized", "--value"]]


async def test_outbox_depth_and_age_read_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    assert check_outbox(data).finding.startswith("empty (no outbox yet")
    outbox = Outbox(data / "outbox.db", store_id="S001", gateway_id="gw-1")
    async with outbox:
        await outbox.append("scanner-1", Reading(kind="scan", data={"code": "1"}))
        await outbox.append("scanner-1", Reading(kind="scan", data={"code": "2"}))
    before = {p.name: p.stat().st_mtime_ns for p in data.iterdir()}
    now = time.time()
    fresh = check_outbox(data, now=now)
    assert fresh.status == "ok"
    assert fresh.finding.startswith("2 event(s) waiting")
    assert check_outbox(data, now=now + 11 * 60).status == "warn"
    stale = check_outbox(data, now=now + 25 * 3600)
    assert stale.status == "fail"
    assert stale.fix is not None
    assert {p.name: p.stat().st_mtime_ns for p in data.iterdir()} == before  # read only
    reopened = Outbox(data / "outbox.db", store_id="S001", gateway_id="gw-1")
    async with reopened:  # the daemon is running: the outbox is in use, -wal and all
        await reopened.append("scanner-1", Reading(kind="scan", data={"code": "3"}))
        assert (data / "outbox.db-wal").exists()
        live = check_outbox(data)
        assert live.status == "ok"
        assert live.finding.startswith("3 event(s) waiting")
    (data / "outbox.db").chmod(0o000)
    if os.geteuid() != 0:  # root reads anything; elsewhere an unreadable outbox is a failure
        assert check_outbox(data).status == "fail"
    (data / "outbox.db").chmod(stat.S_IRUSR | stat.S_IWUSR)


# --- devices ----------------------------------------------------------------------------------


async def test_devices_without_the_daemon_are_checked_for_presence(
    pty: Pty, tmp_path: Path
) -> None:
    port = pty.path
    devices = scanner(port) + scanner("/dev/no-such-tty").replace("scanner-1", "scanner-2")
    cfg = load_config(write_box(tmp_path, "mqtt://127.0.0.1:1883", devices=devices))
    checks = by_name(await check_devices(cfg, timeout=3))
    assert checks["daemon"].status == "warn"
    assert "daemon not running" in checks["daemon"].finding
    assert checks["device scanner-1"].status == "ok"
    assert port in checks["device scanner-1"].finding
    assert checks["device scanner-2"].status == "fail"
    assert "does not exist" in checks["device scanner-2"].finding

    empty = load_config(write_box(tmp_path / "empty", "mqtt://127.0.0.1:1883"))
    assert [c.status for c in await check_devices(empty, timeout=3)] == ["ok"]


async def test_devices_with_the_daemon_are_asked_through_its_control_socket(
    stack: CloudStack, pty: Pty, tmp_path: Path
) -> None:
    port = pty.path
    config = enrolled_box(stack, tmp_path / "box", devices=scanner(port))
    cfg = load_config(config)
    gateway = Gateway(cfg)
    async with running(gateway):
        socket_path = cfg.gateway.data_dir / "control.sock"
        await wait_for(socket_path.exists, timeout=10, message="control socket")
        await wait_for(
            lambda: gateway.devices["scanner-1"].health.state == "available",
            timeout=10,
            message="scanner available",
        )
        checks = await diagnose(config, timeout=5)
        found = by_name(checks)
        assert found["daemon"].status == "ok"
        assert found["device scanner-1"].status == "ok"
        assert "available" in found["device scanner-1"].finding
        assert exit_code(checks) == 0, checks


async def test_a_plain_lab_broker_gives_warnings_exit_1_and_no_password(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    config = write_box(tmp_path, broker.url)
    text = config.read_text().replace(
        "keepalive_s = 5\n", 'keepalive_s = 5\nusername = "lab"\npassword = "s3cret-pw"\n'
    )
    config.write_text(text)
    result = await cli("provision", "doctor", "-c", str(config), "--timeout", "1")
    assert result.exit_code == 1, result.output  # warnings only
    assert "s3cret-pw" not in result.output
    assert "warn  tls: mqtt://127.0.0.1:" in result.output
    assert "ok    acl:" in result.output  # an open broker lets it publish
    assert "warn  clock skew: no answer to clock.now" in result.output  # no cloud service
    assert "fail" not in result.output
