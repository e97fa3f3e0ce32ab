"""Certificate expiry: warned ahead, renewed over the gateway's own mTLS session, used next time."""

from __future__ import annotations

import asyncio
import logging
import shutil
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from typer.testing import Result

from core.events import Reading
from gateway.certwatch import CertWatch
from gateway.config import ConfigError, load_config, parse_config
from gateway.daemon import Gateway
from gateway.mqtt_config import MqttSection
from gateway.rpc import RpcClient, RpcRefused
from gateway.uplink import Uplink, UplinkError
from gateway.wire.certs import build_csr, csr_pem, new_private_key
from simulators.cloud.enrollment import CloudPki, CloudStack, cloud_stack
from tests.support.enroll import cli, enroll, init_box
from tests.support.gateway import running
from tests.support.waiting import wait_for

FAST = {  # reconnect quickly after the broker restarts (env overrides, as an operator would)
    "STOREGW_MQTT__RECONNECT_MIN_S": "0.05",
    "STOREGW_MQTT__RECONNECT_MAX_S": "0.5",
    "STOREGW_MQTT__CONNECT_TIMEOUT_S": "3",
}


def read_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


async def enrolled_box(stack: CloudStack, tmp: Path, name: str = "box") -> Path:
    config = await init_box(stack, tmp / name)
    result = await enroll(stack, config, stack.enrollment.issue_claim("S001", "gw-1", 600))
    assert result.exit_code == 0, result.output
    return config


def kinds(events: list[dict[str, Any]], prefix: str = "cert.") -> list[str]:
    return [e["kind"] for e in events if e["kind"].startswith(prefix)]


async def test_a_short_lived_certificate_is_renewed_and_used_from_the_next_connection(
    tmp_path: Path,
) -> None:
    events: list[dict[str, Any]] = []
    async with cloud_stack(
        tmp_path / "cloud",
        # long enough for enrolment and the first connection on a loaded machine (it cannot
        # renew once expired: that takes a connection), short enough to wait out below
        cert_valid_for=timedelta(seconds=15),
        on_event=lambda e, _dup: events.append(e),
    ) as stack:
        config = await enrolled_box(stack, tmp_path)
        stack.enrollment.cert_valid_for = timedelta(days=365)  # renewals get a normal life
        cfg = load_config(config, environ=FAST)
        assert cfg.mqtt.cert_file is not None
        assert cfg.mqtt.key_file is not None
        old = read_cert(cfg.mqtt.cert_file)
        old_copy = tmp_path / "old.pem"
        shutil.copyfile(cfg.mqtt.cert_file, old_copy)
        key_before = cfg.mqtt.key_file.read_bytes()

        gateway = Gateway(cfg)
        async with running(gateway):
            watch = gateway.certwatch
            assert watch is not None
            await wait_for(lambda: watch.renewals == 1, timeout=10, message="renewed")
            new = read_cert(cfg.mqtt.cert_file)
            assert new.serial_number != old.serial_number
            assert new.not_valid_after_utc - datetime.now(UTC) > timedelta(days=300)
            assert new.subject == old.subject
            assert cfg.mqtt.key_file.read_bytes() == key_before  # same key, new certificate
            assert stat.S_IMODE(cfg.mqtt.key_file.stat().st_mode) == 0o600
            await wait_for(
                lambda: kinds(events) == ["cert.expiring", "cert.renewed"],
                message="cert.expiring then cert.renewed at the cloud",
            )
            expiring = next(e for e in events if e["kind"] == "cert.expiring")
            assert expiring["data"]["serial"] == format(old.serial_number, "x")
            assert expiring["data"]["days_left"] < 1

            # The old certificate runs out; the broker refuses it from then on ...
            await wait_for(
                # A second past notAfter: once (a fresh-clone CI run) a connection made just
                # after it was still accepted; certificate times are whole seconds
                lambda: datetime.now(UTC) > old.not_valid_after_utc + timedelta(seconds=1),
                timeout=20,
                message="the old certificate expired",
            )
            stale = cfg.mqtt.model_copy(update={"cert_file": old_copy, "connect_timeout_s": 2})
            with pytest.raises(UplinkError):
                async with asyncio.timeout(15), Uplink(stale, client_id="stale"):
                    pass
            # ... but the gateway's next session presents the new one.
            sessions = gateway.bridge.sessions_started
            stack.broker.restart()
            await wait_for(
                lambda: gateway.bridge.sessions_started > sessions,
                timeout=15,
                message="a new session after the broker restart",
            )
            await wait_for(stack.cloud.connected.is_set, timeout=15, message="cloud is back")
            reply = await stack.cloud.send_command("S001", "gw-1", "ping", {}, timeout=10)
            assert reply["ok"] is True
            assert watch.renewals == 1  # a year left: no more renewals
        assert kinds(events).count("cert.expiring") == 1


async def test_expiry_is_warned_once_a_day_in_the_log_and_as_an_event(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pki = CloudPki.open(tmp_path / "pki")
    files = pki.issue_files("S001", "gw-1", tmp_path / "id", timedelta(days=10))
    mqtt = MqttSection(
        url="mqtts://localhost:8883", cert_file=files.cert, key_file=files.key, ca_file=files.ca
    )
    emitted: list[Reading] = []

    async def emit(reading: Reading) -> None:
        emitted.append(reading)

    now = [datetime.now(UTC)]

    def watch(warn_days: float = 30) -> CertWatch:
        return CertWatch(
            mqtt,
            store_id="S001",
            gateway_id="gw-1",
            state_file=tmp_path / "certwatch.json",
            rpc=RpcClient(lambda m: m, "reply"),
            emit=emit,
            warn_days=warn_days,
            renew_days=14,  # due, but not connected: nothing to do but warn
            clock=lambda: now[0],
        )

    caplog.set_level(logging.WARNING, logger="gateway.certwatch")
    first = watch()
    for _ in range(3):
        await first.check()
    assert [r.kind for r in emitted] == ["cert.expiring"]
    assert 9.9 < emitted[0].data["days_left"] < 10.1  # type: ignore[operator]
    assert len([r for r in caplog.records if "expires in" in r.getMessage()]) == 1

    await watch().check()  # a restart on the same day stays quiet
    assert len(emitted) == 1

    now[0] += timedelta(days=1)
    await first.check()
    assert [r.kind for r in emitted] == ["cert.expiring", "cert.expiring"]

    quiet = tmp_path / "quiet"
    quiet.mkdir()
    emitted.clear()
    far = watch(warn_days=5)  # 9 days left, warn at 5: nothing
    far.state_file = quiet / "certwatch.json"
    await far.check()
    assert emitted == []


async def test_provision_renew_now_while_the_daemon_keeps_its_session(tmp_path: Path) -> None:
    async with cloud_stack(tmp_path / "cloud") as stack:
        config = await enrolled_box(stack, tmp_path)
        cfg = load_config(config, environ=FAST)
        assert cfg.mqtt.cert_file is not None
        before = read_cert(cfg.mqtt.cert_file)
        gateway = Gateway(cfg)
        async with running(gateway):
            await wait_for(gateway.bridge.connected.is_set, timeout=10, message="connected")
            result: Result = await cli("provision", "renew", "-c", str(config), "--timeout", "10")
            assert result.exit_code == 0, result.output
            after = read_cert(cfg.mqtt.cert_file)
            assert after.serial_number != before.serial_number
            assert format(after.serial_number, "x") in result.output
            assert "PRIVATE KEY" not in result.output
            assert gateway.bridge.sessions_started == 1  # its own client id: no takeover
            assert gateway.bridge.connected.is_set()

        status = await cli("provision", "status", "-c", str(config))
        assert status.exit_code == 0, status.output
        assert format(after.serial_number, "x") in status.output
        assert "mode 0600" in status.output


async def test_renewal_is_refused_for_a_revoked_gateway_or_another_identity(
    tmp_path: Path,
) -> None:
    async with cloud_stack(tmp_path / "cloud") as stack:
        config = await enrolled_box(stack, tmp_path)
        gateway = Gateway(load_config(config, environ=FAST))
        async with running(gateway):
            await wait_for(gateway.bridge.connected.is_set, timeout=10, message="connected")
            other = csr_pem(build_csr(new_private_key(), "S002", "gw-1"))
            with pytest.raises(RpcRefused) as refused:
                await gateway.bridge.rpc.call("cert.renew", {"csr": other}, timeout=5)
            assert refused.value.code == "identity_mismatch"

        stack.enrollment.revoke_gateway("S001", "gw-1")
        result = await cli("provision", "renew", "-c", str(config), "--timeout", "10")
        assert result.exit_code == 1
        assert "revoked" in result.output
        assert "Traceback" not in result.output


async def test_a_cloud_without_renewal_leaves_the_certificate_and_asks_again_tomorrow(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.certwatch")
    async with cloud_stack(
        tmp_path / "cloud", cert_valid_for=timedelta(days=3), renewal=False
    ) as stack:
        config = await enrolled_box(stack, tmp_path)
        cfg = load_config(config, environ=FAST)
        assert cfg.mqtt.cert_file is not None
        before = cfg.mqtt.cert_file.read_bytes()
        gateway = Gateway(cfg)
        async with running(gateway):
            watch = gateway.certwatch
            assert watch is not None
            refused: Callable[[], bool] = lambda: any(  # noqa: E731
                "did not renew" in r.getMessage() for r in caplog.records
            )
            await wait_for(refused, timeout=10, message="the refusal logged")
            assert "unknown_method" in "".join(r.getMessage() for r in caplog.records)
            checks = watch.checks
            watch.trigger()
            await wait_for(lambda: watch.checks > checks, message="another check")
            assert watch.renewals == 0
        assert cfg.mqtt.cert_file.read_bytes() == before
        result = await cli("provision", "renew", "-c", str(config), "--timeout", "10")
        assert result.exit_code == 1
        assert "unknown_method" in result.output


def test_the_certificate_keys_default_to_30_and_14_days_and_are_checked() -> None:
    base: dict[str, Any] = {
        "gateway": {"store_id": "S001", "gateway_id": "gw-1"},
        "mqtt": {"url": "mqtts://mqtt.example.com:8883"},
    }
    cfg = parse_config(base)
    assert (cfg.mqtt.cert_warn_days, cfg.mqtt.cert_renew_days) == (30, 14)
    base["mqtt"] |= {"cert_warn_days": -1, "cert_renew_days": "soon"}
    with pytest.raises(ConfigError) as err:
        parse_config(base)
    assert {p.path for p in err.value.problems} == {"mqtt.cert_warn_days", "mqtt.cert_renew_days"}
