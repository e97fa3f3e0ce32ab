"""``storegw sim cloud``: run the simulated member service until Ctrl-C, then print a report."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from simulators.cloud.service import CloudService

if TYPE_CHECKING:
    from simulators.cloud.enrollment import Enrollment

CLAIM_TTL_S = 7 * 86400.0
"""A claim's default life: a week to get the box to the store and plugged in."""


def _print_event(event: dict[str, Any], duplicate: bool) -> None:
    flags = " (replayed)" if event.get("replayed") else ""
    flags += " DUPLICATE" if duplicate else ""
    data = json.dumps(event.get("data"), ensure_ascii=False)
    typer.echo(
        f"cloud <- #{event['seq']} {event['store_id']}/{event['gateway_id']} "
        f"{event.get('device_id')} {event['kind']}{flags} {data}"
    )


def _print_rpc(method: str, gateway: str, args: dict[str, Any], reply: dict[str, Any]) -> None:
    shown = {k: ("<token>" if k in ("coupon", "code") else v) for k, v in args.items()}
    outcome = "ok" if reply.get("ok") else f"refused {reply.get('error', {}).get('code')}"
    typer.echo(f"cloud rpc {gateway} {method} {json.dumps(shown)} -> {outcome}")


def command(
    action: Annotated[
        str,
        typer.Argument(
            help="serve (default); claim: issue a one-time enrolment token (needs --pki-dir, "
            "--store, --gateway); revoke: revoke an unused claim (--claim-id); claims: list; "
            "sticker-key: a store's sticker keys (--store; --key-out, --key-file or --retire).",
            show_default=False,
        ),
    ] = "serve",
    *,
    url: Annotated[str, typer.Option(help="Broker URL.")] = "mqtt://127.0.0.1:1883",
    prefix: Annotated[str, typer.Option(help="Topic prefix.")] = "storegw/v1",
    db: Annotated[
        Path, typer.Option(help="SQLite database; the cloud's state survives restarts.")
    ] = Path("cloud-sim.db"),
    seed: Annotated[
        bool, typer.Option("--seed/--no-seed", help="Create the seed data on first start.")
    ] = True,
    session_expiry: Annotated[
        int,
        typer.Option(
            min=0,
            help="Seconds the broker keeps the cloud's session (and queues events) while it "
            "is down; 0: start clean.",
        ),
    ] = 3600,
    print_: Annotated[
        bool,
        typer.Option("--print/--quiet", help="Print every event and RPC as it arrives."),
    ] = True,
    pki_dir: Annotated[
        Path | None,
        typer.Option(
            help="The cloud's CA, identities and claims (created on first use). Turns on "
            "enrolment and cert.renew; with an mqtts:// --url the cloud connects as its own "
            "certificate (deploy/mosquitto/)."
        ),
    ] = None,
    broker_url: Annotated[
        str | None, typer.Option(help="The mTLS URL enrolled gateways are told to use.")
    ] = None,
    store: Annotated[str | None, typer.Option(help="claim: the store id.")] = None,
    gateway: Annotated[str | None, typer.Option(help="claim: the gateway id.")] = None,
    ttl: Annotated[
        float, typer.Option(min=1, help="claim: seconds until the claim expires.")
    ] = CLAIM_TTL_S,
    claim_id: Annotated[
        str | None, typer.Option(help="revoke: the claim id (the part after 'sgc1.').")
    ] = None,
    # --- tap stickers (simulators/cloud/web/, simulators/cloud/stickerkeys.py) ---
    web: Annotated[
        str | None, typer.Option(help="serve: also serve the sticker landing page on HOST:PORT.")
    ] = None,
    key_out: Annotated[
        Path | None, typer.Option(help="sticker-key: issue a new key for --store into this file.")
    ] = None,
    key_file: Annotated[
        Path | None, typer.Option(help="sticker-key: register this existing key file instead.")
    ] = None,
    retire: Annotated[str | None, typer.Option(help="sticker-key: retire this key id.")] = None,
) -> None:
    """The cloud member service: answers the counter RPCs, records events, publishes keys.

    Prints a report (counts by kind, duplicates, seq gaps, RPC outcomes) on exit.
    Example: storegw sim cloud --url mqtt://127.0.0.1:1883 --db cloud.db

    Enrolment: storegw sim cloud claim --pki-dir cloud-pki --store S001 --gateway gw-1
    prints a one-time token for `storegw provision enroll --claim ...`; serve with
    --pki-dir cloud-pki --url mqtts://localhost:8883 to answer it.
    """
    logging.basicConfig(level=logging.WARNING)
    if action == "sticker-key":
        from simulators.cloud.stickerkeys import sticker_key_action

        sticker_key_action(db, store, key_out, key_file, retire)
        return
    if action != "serve":
        _claims(action, pki_dir, store=store, gateway=gateway, ttl=ttl, claim_id=claim_id)
        return
    enrollment = None
    tls = None
    if pki_dir is not None:
        from simulators.cloud.enrollment import Enrollment

        enrollment = Enrollment(pki_dir, url=url, broker_url=broker_url or url)
        tls = enrollment.pki.client_context() if url.startswith("mqtts://") else None
    service = CloudService(
        url,
        db,
        prefix=prefix,
        seed=seed,
        identifier="storegw-cloud-sim",
        session_expiry_s=session_expiry,
        on_event=_print_event if print_ else None,
        on_rpc=_print_rpc if print_ else None,
        tls_context=tls,
    )
    try:
        asyncio.run(_serve(service, enrollment, web))
    except KeyboardInterrupt:
        pass
    finally:
        typer.echo(json.dumps(service.report()))


async def _serve(service: CloudService, enrollment: Enrollment | None, web: str | None) -> None:
    if web is not None:
        from simulators.cloud.web.app import serve_beside

        await serve_beside(service, web, _serve(service, enrollment, None))
        return
    if enrollment is None:
        await service.run()
        return
    enrollment.attach(service)
    async with enrollment:
        await service.run()


def _claims(
    action: str,
    pki_dir: Path | None,
    *,
    store: str | None,
    gateway: str | None,
    ttl: float,
    claim_id: str | None,
) -> None:
    from gateway.wire.certs import IdentityError
    from simulators.cloud.enrollment import Enrollment

    if action not in ("claim", "revoke", "claims"):
        raise typer.BadParameter("must be serve, claim, revoke or claims", param_hint="ACTION")
    if pki_dir is None:
        raise typer.BadParameter("the cloud's --pki-dir is needed", param_hint="--pki-dir")
    enrollment = Enrollment(pki_dir)
    if action == "claim":
        if not store or not gateway:
            raise typer.BadParameter("claim needs --store and --gateway", param_hint="--store")
        try:
            token = enrollment.issue_claim(store, gateway, ttl)
        except IdentityError as exc:
            raise typer.BadParameter(str(exc), param_hint="--store/--gateway") from None
        typer.echo(token)
        typer.echo(
            f"one-time claim for {store}/{gateway}, valid {ttl:g}s; it is not shown again",
            err=True,
        )
    elif action == "revoke":
        if not claim_id:
            raise typer.BadParameter("revoke needs --claim-id", param_hint="--claim-id")
        if not enrollment.revoke_claim(claim_id):
            typer.echo(f"no open claim {claim_id}", err=True)
            raise typer.Exit(1)
        typer.echo(f"claim {claim_id} revoked")
    else:
        now = enrollment.clock()
        for claim in enrollment.claims():
            typer.echo(
                f"{claim.claim_id}\t{claim.store_id}/{claim.gateway_id}\t{claim.state(now)}"
                f"\t{claim.expires_at.isoformat(timespec='seconds')}"
            )
