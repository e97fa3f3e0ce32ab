"""A member's phone: holds a member credential and its own Ed25519 key, shows a dynamic QR.

The code (``SGM1:<credential>~<seconds>~<signature>``) changes every ``refresh_s`` seconds, so
a screenshot is useless after the gateway's clock window and a scanned code cannot be used
twice (the gateway's replay cache). ``storegw sim phone`` prints the current code at every
refresh and can type it into a pseudo-terminal scanner the gateway reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.ids import utcnow
from gateway.wire.tokens import make_member_qr
from simulators.pki import write_key

if TYPE_CHECKING:
    from simulators.cloud.service import CloudService
    from simulators.scanner import PtyScanner


class Phone:
    """The member app: ``phone.code()`` is what its screen shows now."""

    def __init__(
        self,
        credential: str,
        key: Ed25519PrivateKey,
        *,
        refresh_s: float = 30.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if not 1 <= refresh_s <= 60:
            raise ValueError("refresh_s must be between 1 and 60 seconds")
        self.credential = credential
        self.key = key
        self.refresh_s = refresh_s
        self.clock = clock

    @classmethod
    async def enroll(
        cls,
        cloud: CloudService,
        member_id: str,
        *,
        key: Ed25519PrivateKey | None = None,
        refresh_s: float = 30.0,
        valid_for: timedelta | None = None,
    ) -> Phone:
        """Get a credential from an in-process cloud for a new (or given) phone key."""
        key = key or Ed25519PrivateKey.generate()
        credential = await cloud.issue_credential(member_id, key.public_key(), valid_for=valid_for)
        return cls(credential, key, refresh_s=refresh_s, clock=cloud.clock)

    @classmethod
    async def enroll_from_db(
        cls,
        db_path: Path,
        member_id: str,
        *,
        key: Ed25519PrivateKey | None = None,
        refresh_s: float = 30.0,
        valid_for: timedelta = timedelta(days=30),
    ) -> Phone:
        """Enrol through the cloud simulator's database (the CLI, next to a running cloud)."""
        from simulators.cloud.store import CloudStore

        key = key or Ed25519PrivateKey.generate()
        now = utcnow()
        async with CloudStore(db_path) as store:
            credential = await store.record_credential(
                member_id, key.public_key(), now=now, expires=now + valid_for
            )
        return cls(credential, key, refresh_s=refresh_s)

    def period_start(self, at: datetime | None = None) -> datetime:
        """The start of the refresh period ``at`` falls in: the time the code carries."""
        ts = (at or self.clock()).timestamp()
        return datetime.fromtimestamp(math.floor(ts / self.refresh_s) * self.refresh_s, UTC)

    def code(self, at: datetime | None = None) -> str:
        """The QR text the screen shows at ``at`` (default: now)."""
        return make_member_qr(self.credential, self.key, at=self.period_start(at))

    async def codes(self) -> AsyncIterator[str]:
        """A new code at every refresh, forever."""
        while True:
            now = self.clock()
            yield self.code(now)
            nxt = self.period_start(now) + timedelta(seconds=self.refresh_s)
            await asyncio.sleep(max(0.0, (nxt - self.clock()).total_seconds()))


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The phone's key from a PEM file, created (mode 0600) on first use."""
    if path.exists():
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise typer.BadParameter(f"{path} is not an Ed25519 private key")
        return loaded
    key = Ed25519PrivateKey.generate()
    write_key(key, path)
    return key


def command(
    *,
    member: Annotated[str, typer.Option(help="Member id to enrol (with --cloud-db).")] = "M1001",
    cloud_db: Annotated[
        Path | None,
        typer.Option(help="The cloud simulator's database: enrol through it."),
    ] = None,
    credential: Annotated[
        str | None,
        typer.Option(help="A member credential (JWT) issued before, instead of enrolling."),
    ] = None,
    key_file: Annotated[
        Path, typer.Option(help="The phone's Ed25519 key (PEM); created when missing.")
    ] = Path("phone-key.pem"),
    refresh: Annotated[
        float, typer.Option(min=1, max=60, help="Seconds between new codes.")
    ] = 30.0,
    count: Annotated[
        int, typer.Option(min=0, help="Show this many codes, then exit; 0: forever.")
    ] = 0,
    scanner: Annotated[
        Path | None,
        typer.Option(
            help="Also type each code into a new pseudo-terminal scanner; PATH becomes a "
            "symlink to it (configure the gateway's scanner port as PATH).",
        ),
    ] = None,
) -> None:
    """Show a member's dynamic QR code (SGM1:...) and refresh it; optionally scan it.

    Example: storegw sim phone --cloud-db cloud-sim.db --member M1001 --count 1
    """
    key = load_or_create_key(key_file)
    if credential is not None:
        phone = Phone(credential, key, refresh_s=refresh)
    elif cloud_db is not None:
        if not cloud_db.exists():
            raise typer.BadParameter(f"{cloud_db} does not exist (start `storegw sim cloud`)")
        try:
            phone = asyncio.run(Phone.enroll_from_db(cloud_db, member, key=key, refresh_s=refresh))
        except KeyError:
            raise typer.BadParameter(f"the cloud has no member {member!r}") from None
    else:
        raise typer.BadParameter("give --cloud-db to enrol, or --credential")
    from simulators.scanner import PtyScanner

    pty = PtyScanner() if scanner is not None else None
    try:
        if pty is not None and scanner is not None:
            if scanner.is_symlink():
                scanner.unlink()
            scanner.symlink_to(pty.path)
            typer.echo(f"scanner {scanner} -> {pty.path}", err=True)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_show(phone, count, pty))
    finally:
        if pty is not None:
            pty.unplug()
        if scanner is not None and scanner.is_symlink():
            scanner.unlink()


async def _show(phone: Phone, count: int, pty: PtyScanner | None) -> None:
    shown = 0
    async for code in phone.codes():
        typer.echo(code)
        sys.stdout.flush()
        if pty is not None and pty.reader_connected():
            pty.type(code)
        shown += 1
        if count and shown >= count:
            return
