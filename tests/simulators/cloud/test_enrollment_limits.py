"""The enrolment listener's limits, against the real Mosquitto 2.0.11 running
deploy/mosquitto/ and the enrolment service: guessing claim secrets is slowed per claim id and
service-wide, a source's new connections (one per guessed claim id) are rate-limited, and the
connection cap holds (deploy/mosquitto/enrolment-limits.nft loaded for the test's port, in a
table of its own).

Without these limits 200 wrong secrets for one claim are all looked at (17.7 s, no slowdown),
and once some clients have come and gone Mosquitto holds 70 idle connections despite
``max_connections 64``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiomqtt
import pytest
from pydantic import SecretStr

from gateway.wire.enrolment import (
    ClaimToken,
    EnrollRequest,
    EnrollResponse,
    request_topic,
    response_topic,
)
from simulators.cloud.claimlimits import ClaimLimiter, ClaimLimits
from simulators.cloud.enrollment import CloudPki, DeployedBroker, Enrollment
from simulators.cloud.netlimits import load, render_enrolment_limits, unload

CSR_UNUSED = "-----BEGIN CERTIFICATE REQUEST-----\nAA==\n-----END CERTIFICATE REQUEST-----\n"


@dataclass
class Listener:
    pki: CloudPki
    broker: DeployedBroker
    enrollment: Enrollment


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[DeployedBroker]:
    b = DeployedBroker(CloudPki.open(tmp_path / "pki"), tmp_path / "broker", die_with_parent=True)
    b.start()
    try:
        yield b
    finally:
        b.kill()


@pytest.fixture
async def listener(broker: DeployedBroker) -> AsyncIterator[Listener]:
    limits = ClaimLimits(free_failures=3, base_lockout_s=2.0, global_burst=1000)
    enrollment = Enrollment(broker.pki.directory, url=broker.url, limits=limits)
    async with enrollment:
        yield Listener(broker.pki, broker, enrollment)


def request(token: ClaimToken, secret: str | None = None) -> bytes:
    doc = EnrollRequest(
        claim_id=token.claim_id,
        secret=SecretStr(secret or token.secret),
        store_id="S001",
        gateway_id="gw-1",
        csr=CSR_UNUSED,
        nonce=secrets.token_urlsafe(12),
    )
    return doc.model_dump_json().encode()


async def attempts(
    listener: Listener, token: ClaimToken, payloads: list[bytes]
) -> list[EnrollResponse]:
    """Send each request as an anonymous client named after the claim (what provision.acl
    allows) and wait for its answer; the answers, in order."""
    tls = ssl.create_default_context(cafile=str(listener.pki.ca_file))
    answers: list[EnrollResponse] = []
    async with aiomqtt.Client(
        "localhost",
        listener.broker.provision_port,
        identifier=token.claim_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=tls,
        timeout=5,
    ) as client:
        await client.subscribe(response_topic(token.claim_id), qos=1)
        for payload in payloads:
            await client.publish(request_topic(token.claim_id), payload, qos=1)
            async with asyncio.timeout(5):
                message = await anext(aiter(client.messages))
            assert isinstance(message.payload, bytes)
            answers.append(EnrollResponse.model_validate_json(message.payload))
    return answers


def codes(answers: list[EnrollResponse]) -> list[str]:
    return [a.error.code if a.error else "ok" for a in answers]


async def test_wrong_secrets_for_one_claim_are_locked_out_then_the_right_one_still_works(
    listener: Listener,
) -> None:
    token = ClaimToken.parse(listener.enrollment.issue_claim("S001", "gw-1", timedelta(hours=1)))
    guesses = [request(token, secrets.token_urlsafe(32)) for _ in range(20)]
    # 3 wrong secrets are free, the 4th locks the claim id for 2 s: the other 16 guesses and
    # then the right secret are answered without their secret being looked at (no oracle).
    answers = await attempts(listener, token, [*guesses, request(token)])
    assert codes(answers) == ["claim_refused"] * 4 + ["rate_limited"] * 17
    last = answers[-1].error
    assert last is not None
    assert last.retry_after_s is not None
    assert 0 < last.retry_after_s <= 2.0
    await asyncio.sleep(last.retry_after_s + 0.05)  # as long as the box was told to wait
    [answer] = await attempts(listener, token, [request(token)])
    assert codes([answer]) == ["bad_csr"]  # looked at again: the secret was right, CSR a stub
    assert listener.enrollment.claims()[0].used_at is None  # guesses never burn the claim


async def test_the_answer_says_how_long_to_wait(listener: Listener) -> None:
    token = ClaimToken.parse(listener.enrollment.issue_claim("S001", "gw-1", 600))
    for _ in range(5):
        listener.enrollment.limiter.failed(token.claim_id)
    answer = listener.enrollment.handle(request(token), token.claim_id)
    assert answer is not None
    assert answer.error is not None
    assert answer.error.code == "rate_limited"
    assert answer.error.retry_after_s is not None
    assert 3.5 < answer.error.retry_after_s <= 4.0  # 2 s doubled once
    assert "try again in 4 s" in answer.error.message


def test_rotating_claim_ids_hits_the_service_wide_budget(tmp_path: Path) -> None:
    limits = ClaimLimits(global_burst=5, global_refill_per_s=0.01)
    enrollment = Enrollment(tmp_path / "pki", limits=limits)
    genuine = ClaimToken.parse(enrollment.issue_claim("S001", "gw-1", 600))
    answers = []
    for _ in range(8):
        fake = ClaimToken.generate()  # a new, unknown claim id (and client id) each time
        answer = enrollment.handle(request(fake), fake.claim_id)
        assert answer is not None
        answers.append(answer)
    assert codes(answers) == ["claim_refused"] * 5 + ["rate_limited"] * 3
    limited = answers[-1].error
    assert limited is not None
    assert limited.retry_after_s == pytest.approx(100, rel=0.05)  # one token at 0.01/s
    # A claim the cloud issued is still looked at: the flood does not stop genuine boxes.
    answer = enrollment.handle(request(genuine), genuine.claim_id)
    assert answer is not None
    assert codes([answer]) == ["bad_csr"]  # the right secret reached the check (stub CSR)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_lockout_doubles_up_to_its_cap_and_a_success_clears_it() -> None:
    clock = Clock()
    limits = ClaimLimits(free_failures=2, base_lockout_s=1, max_lockout_s=8, global_burst=10**6)
    limiter = ClaimLimiter(limits, clock)
    waits = []
    for _ in range(7):
        assert limiter.check("a") is None  # only ever asked once the lockout is over
        limiter.failed("a")
        wait = limiter.check("a")
        waits.append(wait)
        clock.now += wait or 0
    assert waits == [None, None, 1, 2, 4, 8, 8]
    assert limiter.check("b") is None  # another claim id is not affected
    limiter.succeeded("a")
    limiter.failed("a")
    assert limiter.check("a") is None  # a fresh record: the free failures again


def test_the_limiter_forgets_and_tracks_a_bounded_number_of_claim_ids() -> None:
    clock = Clock()
    limits = ClaimLimits(free_failures=0, base_lockout_s=1, max_tracked=3, global_burst=10**6)
    limiter = ClaimLimiter(limits, clock)
    for name in "abcd":
        limiter.failed(name)
    assert limiter.check("a") is None  # the stalest dropped: memory stays bounded
    assert limiter.check("d") == 1
    clock.now += limits.forget_after_s + 1
    limiter.failed("d")
    assert limiter.check("d") == 1  # an hour later it starts over, not at 2 s


# --- the connection cap -----------------------------------------------------------------------


@pytest.fixture
def capped(broker: DeployedBroker) -> Iterator[DeployedBroker]:
    table = f"storegw_enrol_test_{broker.provision_port}"
    load(render_enrolment_limits(broker.provision_port, table))
    try:
        yield broker
    finally:
        unload(table)


def tls_connection(broker: DeployedBroker, source: str) -> ssl.SSLSocket | None:
    """An idle anonymous connection from ``source`` (any 127/8 address is this host), TLS
    handshake done; None when it was refused."""
    raw = socket.socket()
    try:
        raw.bind((source, 0))
        raw.settimeout(5)
        raw.connect(("127.0.0.1", broker.provision_port))
        ctx = ssl.create_default_context(cafile=str(broker.pki.ca_file))
        return ctx.wrap_socket(raw, server_hostname="localhost")
    except OSError:  # reset by the firewall, or closed by Mosquitto during the handshake
        raw.close()
        return None


async def churn(broker: DeployedBroker, clients: int) -> None:
    """Clients that connect and leave, as every enrolment does; each one lowers Mosquitto
    2.0.11's count of the listener's connections by two instead of one."""
    tls = ssl.create_default_context(cafile=str(broker.pki.ca_file))
    for _ in range(clients):
        async with aiomqtt.Client(
            "localhost",
            broker.provision_port,
            identifier=ClaimToken.generate().claim_id,
            tls_context=tls,
            timeout=5,
        ):
            pass


async def test_the_connection_cap_holds_after_clients_came_and_went(
    capped: DeployedBroker,
) -> None:
    await churn(capped, 20)  # Mosquitto's own max_connections 64 now admits 84
    with contextlib.ExitStack() as held:
        opened = []
        for i in range(80):  # 10 sources x 8: each within the per-source cap of 8
            conn = await asyncio.to_thread(tls_connection, capped, f"127.0.0.{2 + i % 10}")
            if conn is not None:
                opened.append(held.enter_context(conn))
        assert len(opened) == 64
    # Closed connections free their slots at once: a store can enrol again.
    conn = await asyncio.to_thread(tls_connection, capped, "127.0.0.2")
    assert conn is not None
    conn.close()


async def test_one_source_gets_at_most_8_connections(capped: DeployedBroker) -> None:
    with contextlib.ExitStack() as held:
        mine = [await asyncio.to_thread(tls_connection, capped, "127.0.0.50") for _ in range(12)]
        for conn in mine:
            if conn is not None:
                held.enter_context(conn)
        assert sum(c is not None for c in mine) == 8
        other = await asyncio.to_thread(tls_connection, capped, "127.0.0.51")
        assert other is not None  # another store is not locked out by the first
        other.close()


def tcp_connects(broker: DeployedBroker, source: str) -> bool:
    """Whether a new TCP connection from ``source`` gets through; closed again at once."""
    try:
        with socket.create_connection(
            ("127.0.0.1", broker.provision_port), timeout=5, source_address=(source, 0)
        ):
            return True
    except OSError:  # reset by the firewall
        return False


async def test_one_source_opens_at_most_30_new_connections_in_a_burst(
    capped: DeployedBroker,
) -> None:
    """Every guessed claim id costs a new connection (provision.acl: a client writes only under
    its own client id), so this is the per-source limit on failed claims. Each connection is
    closed before the next: the limit on connections at once is not what refuses them."""
    tries = [await asyncio.to_thread(tcp_connects, capped, "127.0.0.60") for _ in range(40)]
    assert tries.count(True) == 30
    assert tries[:30] == [True] * 30  # the burst first, then refused
    assert await asyncio.to_thread(tcp_connects, capped, "127.0.0.61")  # other stores still can
