"""Enrolment end to end: claim -> ``provision init`` -> ``provision enroll`` -> the daemon on mTLS.

Everything real: Mosquitto with deploy/mosquitto/, the cloud simulator as ``storegw-cloud``
over mTLS with its enrolment service, the CLI as a technician types it (CliRunner, in a thread
so the cloud keeps running on the test's loop), and the daemon in-process.
"""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from pydantic import SecretStr
from typer.testing import CliRunner, Result

from core.events import Reading
from gateway.config import load_config
from gateway.daemon import Gateway
from gateway.wire.certs import common_name, fingerprint, load_private_key
from gateway.wire.enrolment import ClaimToken, EnrollRequest
from simulators.cloud import seed
from simulators.cloud.enrollment import CloudStack, cloud_stack
from storegw.cli import app, mount_simulators
from tests.support.enroll import cli, enroll, init_box
from tests.support.gateway import running
from tests.support.waiting import wait_for


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[CloudStack]:
    events: list[dict[str, Any]] = []
    async with cloud_stack(tmp_path / "cloud", on_event=lambda e, _dup: events.append(e)) as s:
        s.events = events  # type: ignore[attr-defined]
        yield s


def received(stack: CloudStack) -> list[dict[str, Any]]:
    return stack.events  # type: ignore[attr-defined, no-any-return]


def assert_no_secret(result: Result, token: str) -> None:
    secret = ClaimToken.parse(token).secret
    assert secret not in result.output
    assert "PRIVATE KEY" not in result.output
    assert "Traceback" not in result.output


# --- the good path ----------------------------------------------------------------------------


async def test_an_enrolled_gateway_works_end_to_end_on_mtls(
    stack: CloudStack, tmp_path: Path
) -> None:
    box = tmp_path / "box"
    config = await init_box(stack, box)
    key_before = (box / "data" / "tls" / "gateway.key").read_bytes()
    token = stack.enrollment.issue_claim("S001", "gw-1", timedelta(hours=1))

    result = await enroll(stack, config, token)
    assert result.exit_code == 0, result.output
    assert_no_secret(result, token)
    assert "S001/gw-1" in result.output

    cfg = load_config(config)
    assert cfg.mqtt.url == stack.broker.url
    assert cfg.mqtt.cert_file is not None
    assert cfg.mqtt.key_file is not None
    assert cfg.mqtt.ca_file is not None
    assert cfg.mqtt.key_file.read_bytes() == key_before  # the key never changed hands
    assert stat.S_IMODE(cfg.mqtt.key_file.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(cfg.mqtt.cert_file.read_bytes())
    assert common_name(cert.subject) == "S001/gw-1"
    assert fingerprint(cert.public_key()) == fingerprint(load_private_key(cfg.mqtt.key_file))
    [claim] = stack.enrollment.claims()
    assert claim.state(stack.enrollment.clock()) == "used"

    gateway = Gateway(cfg)
    async with running(gateway):
        await wait_for(gateway.bridge.connected.is_set, timeout=10, message="mTLS session")
        await wait_for(
            lambda: stack.cloud.status.get("S001/gw-1", {}).get("state") == "online",
            message="status online at the cloud",
        )
        await gateway.submit("scanner-1", Reading(kind="scan", data={"code": "4006381333931"}))
        await wait_for(
            lambda: any(e["kind"] == "scan" for e in received(stack)), message="event at cloud"
        )
        reply = await stack.cloud.send_command("S001", "gw-1", "ping", {"echo": "hi"})
        assert reply["ok"] is True
        assert reply["data"]["echo"] == "hi"
        # The counter's RPCs (cloud answers on the gateway's reply topic) work too.
        data = await gateway.bridge.rpc.call(
            "member.identify", {"by": "member_id", "member_id": seed.ALICE}, timeout=5
        )
        member = data["member"]
        assert isinstance(member, dict)
        assert member["member_id"] == seed.ALICE
    assert gateway.certwatch is not None  # watching a year-long certificate: nothing to do
    assert gateway.certwatch.renewals == 0
    assert not [e for e in received(stack) if e["kind"].startswith("cert.")]


async def test_the_claim_cli_issues_a_token_the_box_can_use(
    stack: CloudStack, tmp_path: Path
) -> None:
    mount_simulators(["sim", "cloud"])
    pki_dir = str(stack.pki.directory)
    issued = await cli("sim", "cloud", "claim", "--pki-dir", pki_dir,
                       "--store", "S001", "--gateway", "gw-1", "--ttl", "600")  # fmt: skip
    assert issued.exit_code == 0, issued.output
    token = issued.stdout.strip()
    assert ClaimToken.parse(token).claim_id in (c.claim_id for c in stack.enrollment.claims())
    listed = await cli("sim", "cloud", "claims", "--pki-dir", pki_dir)
    assert "S001/gw-1\topen" in listed.stdout
    assert ClaimToken.parse(token).secret not in listed.stdout  # the list never shows secrets

    config = await init_box(stack, tmp_path / "box")
    result = await enroll(stack, config, token)
    assert result.exit_code == 0, result.output


async def test_the_token_can_be_typed_hidden_instead_of_a_flag(
    stack: CloudStack, tmp_path: Path
) -> None:
    config = await init_box(stack, tmp_path / "box")
    token = stack.enrollment.issue_claim("S001", "gw-1", 600)
    result = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["provision", "enroll", "-c", str(config), "--provision-url", stack.broker.provision_url],
        input=token + "\n",
    )
    assert result.exit_code == 0, result.output
    assert "Claim token" in result.output
    assert ClaimToken.parse(token).secret not in result.output  # not echoed


# --- refused claims -----------------------------------------------------------------------------


async def test_a_claim_works_once(stack: CloudStack, tmp_path: Path) -> None:
    token = stack.enrollment.issue_claim("S001", "gw-1", 600)
    first = await enroll(stack, await init_box(stack, tmp_path / "box-1"), token)
    assert first.exit_code == 0, first.output
    second_box = await init_box(stack, tmp_path / "box-2")  # another key, same claim
    second = await enroll(stack, second_box, token)
    assert second.exit_code == 1
    assert "claim_used" in second.output
    assert_no_secret(second, token)
    assert load_config(second_box).mqtt.cert_file is None  # the config is left as it was


async def test_an_expired_claim_is_refused_and_not_consumed(
    stack: CloudStack, tmp_path: Path
) -> None:
    config = await init_box(stack, tmp_path / "box")
    token = stack.enrollment.issue_claim("S001", "gw-1", timedelta(minutes=10))
    real = stack.enrollment.clock
    stack.enrollment.clock = lambda: real() + timedelta(minutes=11)
    result = await enroll(stack, config, token)
    assert result.exit_code == 1
    assert "claim_expired" in result.output
    assert_no_secret(result, token)
    [claim] = stack.enrollment.claims()
    assert claim.used_at is None


async def test_a_revoked_claim_is_refused(stack: CloudStack, tmp_path: Path) -> None:
    mount_simulators(["sim", "cloud"])
    config = await init_box(stack, tmp_path / "box")
    token = stack.enrollment.issue_claim("S001", "gw-1", 600)
    claim_id = ClaimToken.parse(token).claim_id
    revoked = await cli("sim", "cloud", "revoke", "--pki-dir", str(stack.pki.directory),
                        "--claim-id", claim_id)  # fmt: skip
    assert revoked.exit_code == 0, revoked.output
    result = await enroll(stack, config, token)
    assert result.exit_code == 1
    assert "claim_revoked" in result.output
    again = await cli("sim", "cloud", "revoke", "--pki-dir", str(stack.pki.directory),
                      "--claim-id", claim_id)  # fmt: skip
    assert again.exit_code == 1  # nothing open to revoke


async def box_with_a_forged_claim(
    stack: CloudStack, tmp_path: Path
) -> tuple[Path, ClaimToken, str]:
    """An initialised box, its genuine claim, and that claim id with a wrong secret."""
    config = await init_box(stack, tmp_path / "box")
    token = ClaimToken.parse(stack.enrollment.issue_claim("S001", "gw-1", 600))
    return config, token, str(ClaimToken(token.claim_id, "x" * 43))


async def test_a_wrong_secret_or_another_gateways_claim_is_refused(
    stack: CloudStack, tmp_path: Path
) -> None:
    config, token, forged = await box_with_a_forged_claim(stack, tmp_path)
    wrong = await enroll(stack, config, forged)
    assert wrong.exit_code == 1
    assert "claim_refused" in wrong.output
    assert stack.enrollment.claims()[0].used_at is None  # a guess does not burn the claim

    for_gw2 = stack.enrollment.issue_claim("S001", "gw-2", 600)
    other = await enroll(stack, config, for_gw2)
    assert other.exit_code == 1
    assert "identity_mismatch" in other.output

    ok = await enroll(stack, config, str(token))  # the genuine claim still works
    assert ok.exit_code == 0, ok.output


async def test_after_repeated_wrong_secrets_the_box_is_told_to_wait(
    stack: CloudStack, tmp_path: Path
) -> None:
    config, token, forged = await box_with_a_forged_claim(stack, tmp_path)
    for _ in range(4):  # a mistyped token, again and again
        wrong = await enroll(stack, config, forged)
        assert "claim_refused" in wrong.output
    locked = await enroll(stack, config, str(token))
    assert locked.exit_code == 1
    assert "rate_limited" in locked.output
    assert "try again in 2 s" in locked.output
    assert_no_secret(locked, str(token))
    await wait_for(
        lambda: stack.enrollment.limiter.check(token.claim_id) is None,
        timeout=5,
        message="the lockout to run out",
    )
    ok = await enroll(stack, config, str(token))
    assert ok.exit_code == 0, ok.output


async def test_mistakes_on_the_box_get_a_message(stack: CloudStack, tmp_path: Path) -> None:
    config = await init_box(stack, tmp_path / "box")
    token = stack.enrollment.issue_claim("S001", "gw-1", 600)
    missing = str(tmp_path / "missing.toml")
    plain = "mqtt://localhost:1883"
    cases = [
        (["--claim", "not-a-token"], 2, "not a claim token"),
        (["--claim", token, "--provision-url", plain], 1, "never sent without TLS"),
        (["--claim", token, "-c", missing], 1, "run `storegw provision init`"),
    ]
    for args, code, message in cases:
        result = await cli("provision", "enroll", "-c", str(config), *args)
        assert result.exit_code == code, result.output
        assert message in result.output
        assert "Traceback" not in result.output
        assert ClaimToken.parse(token).secret not in result.output


async def test_an_untrusted_provisioning_broker_gets_no_secret(
    stack: CloudStack, tmp_path: Path
) -> None:
    box = tmp_path / "box"
    config = box / "storegw.toml"
    result = await cli(
        "provision",
        "init",
        "-c",
        str(config),
        "--store",
        "S001",
        "--gateway",
        "gw-1",
        "--url",
        stack.broker.url,
        "--data-dir",
        str(box / "data"),
    )  # fmt: skip  (no --ca-file: the system's trust store does not know the test CA)
    assert result.exit_code == 0, result.output
    token = stack.enrollment.issue_claim("S001", "gw-1", 600)
    refused = await enroll(stack, config, token)
    assert refused.exit_code == 1
    assert "does not trust" in refused.output
    assert stack.enrollment.outcomes == {}  # nothing reached the cloud


# --- the cloud side of the protocol --------------------------------------------------------------


async def test_a_lost_answer_can_be_asked_again_with_the_same_key(
    stack: CloudStack, tmp_path: Path
) -> None:
    from gateway.wire.certs import build_csr, csr_pem, new_private_key

    token = ClaimToken.parse(stack.enrollment.issue_claim("S001", "gw-1", 600))
    key = new_private_key()

    def request(nonce: str, csr_key: Any = key) -> bytes:
        return (
            EnrollRequest(
                claim_id=token.claim_id,
                secret=SecretStr(token.secret),
                store_id="S001",
                gateway_id="gw-1",
                csr=csr_pem(build_csr(csr_key, "S001", "gw-1")),
                nonce=nonce,
            )
            .model_dump_json()
            .encode()
        )

    first = stack.enrollment.handle(request("n" * 16), token.claim_id)
    again = stack.enrollment.handle(request("m" * 16), token.claim_id)
    assert first is not None
    assert again is not None
    assert first.ok
    assert again.ok
    assert again.certificate == first.certificate
    assert again.nonce == "m" * 16
    other_key = stack.enrollment.handle(request("o" * 16, new_private_key()), token.claim_id)
    assert other_key is not None
    assert other_key.error is not None
    assert other_key.error.code == "claim_used"
    real = stack.enrollment.clock
    stack.enrollment.clock = lambda: real() + timedelta(hours=1)  # past the resend window
    late = stack.enrollment.handle(request("p" * 16), token.claim_id)
    assert late is not None
    assert late.error is not None
    assert late.error.code == "claim_used"
    mismatch = stack.enrollment.handle(request("q" * 16), "0" * 16)  # not its own topic
    assert mismatch is not None
    assert mismatch.error is not None
    assert mismatch.error.code == "bad_request"


def test_the_ca_key_is_owner_only(tmp_path: Path) -> None:
    from simulators.cloud.enrollment import CloudPki

    pki = CloudPki.open(tmp_path / "pki")
    for key in (pki.ca_key_file, pki.broker_key, pki.cloud_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    again = CloudPki.open(tmp_path / "pki")  # persisted: the same CA next time
    assert again.authority.cert == pki.authority.cert


def test_claim_tokens_do_not_show_their_secret() -> None:
    token = ClaimToken.generate()
    assert token.secret not in repr(token)
    request = EnrollRequest(
        claim_id=token.claim_id,
        secret=SecretStr(token.secret),
        store_id="S001",
        gateway_id="gw-1",
        csr="-" * 64,
        nonce="n" * 16,
    )
    assert token.secret not in repr(request)
    assert token.secret not in str(request)
    assert token.secret in request.model_dump_json()  # only on the wire
