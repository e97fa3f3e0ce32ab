"""config.set through the real broker and the cloud simulator, and on the file: allowed keys
written with comments kept and a backup, applied without a restart where the daemon can;
refused keys and invalid values answered with why, the file untouched."""

from __future__ import annotations

import json
import logging
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from gateway.daemon import Gateway
from simulators.broker import MosquittoBroker
from simulators.cloud import CloudService
from simulators.scanner import PtyScanner
from tests.support.gateway import running
from tests.support.mqtt import Observer
from tests.support.waiting import wait_for

TEMPLATE = """\
# storegw on the test box: every comment here must survive config.set
[gateway]
store_id = "S001"   # the store's id, from the claim
gateway_id = "gw-1"
data_dir = "{data}"

[mqtt]
url = "{url}"
# reconnect quickly in tests
reconnect_min_s = 0.05
reconnect_max_s = 0.5
keepalive_s = 5

[log]
level = "INFO"   # raise to DEBUG while debugging a store

[supervisor]
retry_min_s = 0.05
retry_max_s = 0.5

# the scanner at the till
[[devices]]
id = "scanner-1"
kind = "scanner"
port = "{port}"   # ttyACM0 on a real box
"""


@pytest.fixture(autouse=True)
def _root_level() -> Iterator[None]:
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)


def write(tmp_path: Path, url: str, port: str) -> Path:
    path = tmp_path / "storegw.toml"
    path.write_text(TEMPLATE.format(data=tmp_path / "data", url=url, port=port))
    path.chmod(0o640)
    return path


@pytest.fixture
def box(broker: MosquittoBroker, scanner: PtyScanner, tmp_path: Path) -> tuple[Path, Gateway]:
    """The config file on the box and a gateway started from it (not yet running)."""
    path = write(tmp_path, broker.url, scanner.path)
    return path, Gateway(load_config(path), config_path=path)


async def config_set(cloud: CloudService, changes: dict[str, Any], **extra: Any) -> Any:
    return await cloud.send_command("S001", "gw-1", "config.set", {"changes": changes, **extra})


async def test_allowed_keys_are_written_with_comments_kept_and_applied(
    box: tuple[Path, Gateway], cloud: CloudService
) -> None:
    path, gw = box
    original = path.read_text()
    async with running(gw, connected=True):
        dry = await config_set(cloud, {"log.level": "ERROR"}, dry_run=True)
        assert dry["data"]["changed"]["log.level"]["new"] == "ERROR"
        assert dry["data"]["dry_run"] is True
        assert path.read_text() == original
        assert gw.config.log.level == "INFO"
        result = await config_set(
            cloud, {"log.level": "DEBUG", "mqtt.replay_max_per_s": 200, "mqtt.replay_share": 0.8}
        )
        assert result["ok"] is True, result
        data = result["data"]
        assert data["changed"] == {
            "log.level": {"old": "INFO", "new": "DEBUG", "effective": "now"},
            "mqtt.replay_max_per_s": {"old": None, "new": 200.0, "effective": "next_session"},
        }  # replay_share was 0.8 already: not a change
        assert data["restart_required"] is False
        assert logging.getLogger().level == logging.DEBUG
        assert gw.config.log.level == "DEBUG"
        assert gw.bridge._cfg.replay_max_per_s == 200

        text = path.read_text()
        for line in original.splitlines():
            if line.startswith("#") or ("#" in line and "level" not in line):
                assert line in text, line
        assert 'level = "DEBUG"   # raise to DEBUG while debugging a store' in text
        assert tomllib.loads(text)["mqtt"]["replay_max_per_s"] == 200
        assert path.with_name("storegw.toml.bak").read_text() == original
        assert data["backup"] == str(path.with_name("storegw.toml.bak"))
        assert path.stat().st_mode & 0o777 == 0o640
        assert load_config(path).log.level == "DEBUG"  # what the next start reads

        again = await config_set(cloud, {"log.level": "DEBUG"})
        assert again["data"] == {"changed": {}, "restart_required": False}


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("mqtt.url", "mqtts://elsewhere:8883", "broker connection"),
        ("mqtt.cert_file", "/tmp/other.pem", "certificates"),
        ("gateway.store_id", "S999", "identity"),
        ("api.listen", "0.0.0.0:8443", "local API"),
    ],
)
async def test_refused_keys_name_why_and_leave_the_file_alone(
    box: tuple[Path, Gateway], cloud: CloudService, key: str, value: str, why: str
) -> None:
    path, gw = box
    original = path.read_bytes()
    async with running(gw, connected=True):
        result = await config_set(cloud, {"log.level": "DEBUG", key: value})
    assert result["ok"] is False
    error = result["error"]
    assert error["code"] == "refused_key"
    assert [r["key"] for r in error["details"]["refused"]] == [key]
    assert why in error["details"]["refused"][0]["reason"]
    assert "log.level" in error["details"]["allowed"]
    assert path.read_bytes() == original
    assert not path.with_name("storegw.toml.bak").exists()
    assert gw.config.log.level == "INFO"


async def test_invalid_values_are_refused_by_the_config_models(
    box: tuple[Path, Gateway], cloud: CloudService
) -> None:
    path, gw = box
    original = path.read_bytes()
    async with running(gw, connected=True):
        loud = await config_set(cloud, {"log.level": "LOUD", "mqtt.replay_share": 3})
        assert loud["error"]["code"] == "invalid_config"
        paths = {p["path"] for p in loud["error"]["details"]["problems"]}
        assert paths == {"log.level", "mqtt.replay_share"}
        twin = await config_set(
            cloud, {"devices": [{"id": "a", "kind": "scanner", "port": "/x"}] * 2}
        )
        assert twin["error"]["code"] == "invalid_config"
        unknown = await config_set(cloud, {"devices.scanner-1.bogus": 1, "nonsense.key": 1})
        assert unknown["error"]["code"] == "unknown_key"  # nonsense is no section at all
        bad_kind = await config_set(cloud, {"devices.scanner-1.bogus": 1})
        assert bad_kind["error"]["details"]["problems"][0]["path"] == "devices[0].bogus"
        envelope = await cloud.send_command("S001", "gw-1", "config.set", {"changes": {}})
        assert envelope["error"]["code"] == "bad_args"
    assert path.read_bytes() == original
    assert not path.with_name("storegw.toml.bak").exists()


async def test_devices_are_added_and_removed_at_once_with_their_availability(
    box: tuple[Path, Gateway], cloud: CloudService, observer: Observer
) -> None:
    path, gw = box
    availability = "storegw/v1/S001/gw-1/devices/{}/availability"

    def last(device_id: str) -> bytes | None:
        seen = [p for t, p, _ in observer.messages if t == availability.format(device_id)]
        return seen[-1] if seen else None

    with PtyScanner() as second:
        async with running(gw, connected=True):
            added = await config_set(
                cloud, {"devices.scanner-2": {"kind": "scanner", "port": second.path}}
            )
            assert added["ok"] is True, added
            change = added["data"]["changed"]["devices.scanner-2"]
            assert change["old"] is None
            assert change["new"]["port"] == second.path
            assert change["effective"] == "now"
            assert "scanner-2" in gw.devices
            await wait_for(
                lambda: json.loads(last("scanner-2") or b"{}").get("state") == "online",
                timeout=10,
                message="the new scanner runs and is announced",
            )
            removed = await config_set(cloud, {"devices.scanner-1": None})
            assert removed["data"]["changed"]["devices.scanner-1"]["new"] is None
            assert list(gw.devices) == ["scanner-2"]
            await wait_for(lambda: last("scanner-1") == b"", message="availability cleared")
    entries = tomllib.loads(path.read_text())["devices"]
    assert [d["id"] for d in entries] == ["scanner-2"]
    assert "# the scanner at the till" in path.read_text()


async def test_a_device_the_counter_depends_on_needs_a_restart(tmp_path: Path) -> None:
    path = write(tmp_path, "mqtt://127.0.0.1:1", "/dev/null")
    with path.open("a") as f:
        f.write('till = "till-1"\n\n[counter]\nenabled = true\n')
    gw = Gateway(load_config(path), config_path=path)
    result = await gw.dispatcher.call(
        "config.set", {"args": {"changes": {"devices.scanner-1.till": "till-2"}}}
    )
    assert isinstance(result, dict)
    assert result["ok"] is True, result
    assert result["data"]["restart_required"] is True  # type: ignore[index,call-overload]
    assert gw.devices["scanner-1"].config.till == "till-1"  # running as before
    assert tomllib.loads(path.read_text())["devices"][0]["till"] == "till-2"


async def test_a_key_the_environment_overrides_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "mqtt://127.0.0.1:1", "/dev/null")
    monkeypatch.setenv("STOREGW_LOG__LEVEL", "WARNING")
    gw = Gateway(load_config(path), config_path=path)
    result = await gw.dispatcher.call("config.set", {"args": {"changes": {"log.level": "DEBUG"}}})
    assert isinstance(result, dict)
    assert result["error"]["code"] == "refused_key"  # type: ignore[index,call-overload]
    without = Gateway(load_config(path))
    refused = await without.dispatcher.call(
        "config.set", {"args": {"changes": {"log.level": "DEBUG"}}}
    )
    assert refused["error"]["code"] == "no_config_file"  # type: ignore[index,call-overload]


async def test_a_file_that_cannot_be_written_is_reported_and_left_as_it_was(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "mqtt://127.0.0.1:1", "/dev/null")
    original = path.read_bytes()
    (tmp_path / "storegw.toml.bak").mkdir()  # the backup cannot take its place
    gw = Gateway(load_config(path), config_path=path)
    result = await gw.dispatcher.call("config.set", {"args": {"changes": {"log.level": "DEBUG"}}})
    assert isinstance(result, dict)
    assert result["error"]["code"] == "config_write_failed"  # type: ignore[index,call-overload]
    assert path.read_bytes() == original
    assert gw.config.log.level == "INFO"
