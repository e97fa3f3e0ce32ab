"""``storegw provision doctor``: is this box ready to serve the store, and if not, what to do.

Every check only reads; they run in the order a technician fixes things, and a check whose
prerequisite failed is reported as not checked rather than failing for the same reason.
"""

from __future__ import annotations

from pathlib import Path

from provisioning.doctor import devices, files, hardware, network, session, storeledger
from provisioning.doctor.checks import Check, blocked


async def diagnose(config_path: Path, *, timeout: float = 5.0) -> list[Check]:
    """Every check, in the order a technician fixes things."""
    config, cfg = files.check_config(config_path)
    checks = [config]
    if cfg is None:
        return checks
    data_dir = cfg.gateway.data_dir
    checks += [
        files.check_data_dir(data_dir),
        files.check_data_files(data_dir),
        files.check_key_files(cfg),
    ]
    checks += [files.check_disk(data_dir), files.check_ntp()]
    mqtt = cfg.mqtt
    dns = await network.check_dns(mqtt.host, mqtt.port, timeout)
    checks.append(dns)
    tcp = await network.check_tcp(mqtt.host, mqtt.port, timeout) if dns.status == "ok" else None
    checks.append(tcp or blocked("tcp", "dns"))
    reachable = tcp is not None and tcp.status == "ok"
    tls = await network.check_tls(cfg, timeout) if reachable else blocked("tls", "tcp")
    checks += [tls, network.check_client_cert(cfg)]
    if reachable and tls.status != "fail":
        mqtt_session = await session.check_session(cfg, timeout)
    else:
        mqtt_session = [
            blocked("acl", "tls" if reachable else "tcp"),
            blocked("clock skew", "tls" if reachable else "tcp"),
        ]
    checks += mqtt_session
    checks += await devices.check_devices(cfg, timeout)
    store_ledger = await storeledger.check_store_ledger(cfg, timeout)
    if store_ledger is not None:
        checks.append(store_ledger)
    checks += await hardware.hardware_checks(cfg)
    checks.append(files.check_outbox(data_dir))
    return checks
