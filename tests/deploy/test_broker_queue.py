"""The shipped broker keeps what a consumer misses and saves what it acknowledged.

deploy/mosquitto/storegw.conf runs as it ships (only ports, paths and the log substituted) on
a real Mosquitto 2.0.11, a gateway identity publishing and the cloud identity consuming with a
persistent session. The figures asserted are read from the shipped file, not copied: the
queue holds a 5,000-event outage whole, a broker killed with -9 loses no more than the
``autosave_interval`` changes it documents, and what the count leaves unsaved on a quiet broker
is saved by the shipped timer's SIGUSR1.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from simulators.cloud.enrollment import DEPLOY_DIR, CloudPki, DeployedBroker
from tests.support.acl import S1, client, identity
from tests.support.waiting import wait_for

CONSUMER = "storegw-cloud-queue"


def shipped(name: str) -> str:
    """The value of one setting in the shipped storegw.conf (it must be set exactly once)."""
    text = (DEPLOY_DIR / "storegw.conf").read_text()
    found = re.findall(rf"(?m)^{re.escape(name)} (\S+)$", text)
    assert len(found) == 1, (name, found)
    return str(found[0])


@contextlib.asynccontextmanager
async def connect(
    port: int, tls: ssl.SSLContext, client_id: str, *, persistent: bool = False
) -> AsyncIterator[aiomqtt.Client]:
    """A v5 client; ``persistent``: its session (and queue) outlives the connection by a day."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 86400 if persistent else 0
    async with client(port, tls, client_id, clean_start=not persistent, properties=props) as c:
        c.pending_calls_threshold = 1000
        yield c


async def subscribe_and_leave(broker: DeployedBroker, pki: CloudPki) -> None:
    """The cloud consumer's persistent session with its subscription, then it goes away."""
    async with connect(broker.port, pki.client_context(), CONSUMER, persistent=True) as c:
        await c.subscribe("storegw/v1/+/+/events/#", qos=1)


async def publish(
    broker: DeployedBroker, pki: CloudPki, tmp: Path, count: int, first: int = 0
) -> None:
    """``count`` events from gateway S001/gw-1, numbered from ``first``, each acknowledged
    (PUBACK) by the broker."""
    gw = identity(pki, tmp, "S001")
    tls = pki.client_context(gw.cert, gw.key)
    payload = b'{"kind":"scan","data":{"code":"' + b"4" * 300 + b'"}}'
    async with connect(broker.port, tls, "gw-s1") as c:
        for start in range(first, first + count, 100):
            batch = range(start, min(first + count, start + 100))
            await asyncio.gather(
                *(c.publish(f"{S1}/events/scan", payload + b"#%d" % i, qos=1) for i in batch)
            )


async def collect(broker: DeployedBroker, pki: CloudPki, quiet_s: float = 1.5) -> set[int]:
    """What the returning consumer receives, until nothing more comes for ``quiet_s``."""
    got: set[int] = set()
    async with connect(broker.port, pki.client_context(), CONSUMER, persistent=True) as c:
        with contextlib.suppress(TimeoutError):
            while True:
                async with asyncio.timeout(quiet_s):
                    msg = await anext(aiter(c.messages))
                assert isinstance(msg.payload, bytes)
                got.add(int(msg.payload.rpartition(b"#")[2]))
    return got


def test_the_shipped_limits_are_by_bytes_and_saves_count_changes() -> None:
    limit = int(shipped("max_queued_bytes"))
    assert limit >= 256 * 1024 * 1024
    assert int(shipped("max_queued_messages")) * 54 >= limit  # the bytes decide
    assert shipped("autosave_on_changes") == "true"
    assert shipped("persistence") == "true"
    assert re.fullmatch(r"\d+[hdwmy]", shipped("persistent_client_expiration"))


async def test_a_consumer_away_for_5000_events_gets_all_of_them(
    pki: CloudPki, deployed_broker: DeployedBroker, tmp_path: Path
) -> None:
    await subscribe_and_leave(deployed_broker, pki)
    await publish(deployed_broker, pki, tmp_path, 5000)
    got = await collect(deployed_broker, pki)
    assert got == set(range(5000))  # Mosquitto's default max_queued_messages 1000 kept 1000


async def test_a_broker_killed_after_puback_loses_no_more_than_the_documented_changes(
    pki: CloudPki, deployed_broker: DeployedBroker, tmp_path: Path
) -> None:
    bound = int(shipped("autosave_interval"))
    sent = bound * 5 // 2
    await subscribe_and_leave(deployed_broker, pki)
    await publish(deployed_broker, pki, tmp_path, sent)  # every one PUBACKed
    deployed_broker.kill()
    deployed_broker.start()
    got = await collect(deployed_broker, pki)
    lost = set(range(sent)) - got
    assert got, "nothing was saved: the snapshot does not follow the changes"
    assert len(lost) <= bound, f"{len(lost)} acknowledged events lost, documented <= {bound}"
    assert lost == set(range(sent - len(lost), sent)), "only the newest events are at risk"


def unit_setting(unit: str, key: str) -> str:
    lines = (DEPLOY_DIR / unit).read_text().splitlines()
    found = [line.split("=", 1)[1] for line in lines if line.startswith(f"{key}=")]
    assert len(found) == 1, (unit, key, found)
    return found[0]


def test_the_save_timer_signals_the_broker_every_30_s() -> None:
    assert unit_setting("storegw-broker-save.timer", "OnUnitActiveSec") == "30s"
    command = unit_setting("storegw-broker-save.service", "ExecStart").split()
    assert command[:2] == ["/usr/bin/systemctl", "kill"]
    assert {"--signal=SIGUSR1", "--kill-whom=main", "mosquitto.service"} <= set(command)
    units = [str(DEPLOY_DIR / f"storegw-broker-save.{kind}") for kind in ("timer", "service")]
    done = subprocess.run(
        ["systemd-analyze", "verify", *units], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stderr) == (0, "")


async def test_a_quiet_broker_loses_what_the_count_left_unsaved_unless_the_timer_saves_it(
    pki: CloudPki, deployed_broker: DeployedBroker, tmp_path: Path
) -> None:
    few = int(shipped("autosave_interval")) // 10  # far fewer changes than trigger a save
    snapshot = deployed_broker.workdir / "data" / "mosquitto.db"

    def saved() -> int:
        return snapshot.stat().st_ino if snapshot.exists() else 0  # written new, then renamed

    await subscribe_and_leave(deployed_broker, pki)
    await publish(deployed_broker, pki, tmp_path, few)
    before = saved()
    deployed_broker.save()  # what storegw-broker-save.service does every 30 s
    await wait_for(lambda: saved() != before, message="the broker wrote its snapshot")
    deployed_broker.kill()
    deployed_broker.start()
    assert await collect(deployed_broker, pki) == set(range(few))

    await publish(deployed_broker, pki, tmp_path, few, first=few)  # and no save this time
    deployed_broker.kill()
    deployed_broker.start()
    assert not await collect(deployed_broker, pki) & set(range(few, 2 * few)), (
        "the count alone saved them: the timer would not be needed"
    )
