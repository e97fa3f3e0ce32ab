"""``storegw sim cloud sticker-key``: the cloud issues, registers, retires and lists a store's
sticker keys (simulators/cloud/store/stickers.py keeps them).

The cloud makes the key (a chain trusts a key that was made where it is verified and kept, not
one a box made and nobody else saw); it leaves the cloud once, in a 0600 key file for that
store's box (``storegw provision sticker key-install FILE``). A box that already has a key can
have it registered instead (``--key-file``). Secrets are never printed, only key ids.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import typer

from core.ids import utcnow
from drivers.nfc.codec import StickerKey
from simulators.cloud.store import CloudStore, Refusal


def write_key_file(path: Path, key: StickerKey) -> None:
    """0600 from its creation; refuses to overwrite a file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.file_text())
        f.flush()
        os.fsync(f.fileno())


async def _run(
    db: Path, store_id: str, out: Path | None, register: StickerKey | None, retire: str | None
) -> str:
    now = utcnow()
    async with CloudStore(db) as store:
        if retire is not None:
            if not await store.retire_sticker_key(store_id, retire, now=now):
                raise typer.BadParameter(f"no active key {retire} for {store_id}")
            return f"sticker key {retire} of {store_id} retired: its stickers no longer verify"
        if register is not None:
            try:
                new = await store.register_sticker_key(store_id, register, now=now)
            except Refusal as exc:
                raise typer.BadParameter(str(exc), param_hint="--key-file") from None
            done = "registered" if new else "already known"
            return f"sticker key {register.key_id} {done} for {store_id}"
        if out is not None:
            key = await store.issue_sticker_key(store_id, now=now)
            await asyncio.to_thread(write_key_file, out, key)
            return f"sticker key {key.key_id} issued for {store_id} into {out} (0600)"
        rows = await store.sticker_keys(store_id)
        return (
            "\n".join(
                f"{r['key_id']}\t{r['origin']}\t{r['created_at']}\t"
                f"{'retired ' + r['retired_at'] if r['retired_at'] else 'active'}"
                for r in rows
            )
            or f"no sticker keys for {store_id}"
        )


def sticker_key_action(
    db: Path, store_id: str | None, out: Path | None, key_file: Path | None, retire: str | None
) -> None:
    """Issue (``--key-out``), register (``--key-file``), retire (``--retire``) or list."""
    if not store_id:
        raise typer.BadParameter("sticker-key needs --store", param_hint="--store")
    if out is not None and out.exists():
        raise typer.BadParameter(f"{out} exists", param_hint="--key-out")
    register = None
    if key_file is not None:
        try:
            register = StickerKey.from_file(key_file)
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--key-file") from None
    typer.echo(asyncio.run(_run(db, store_id, out, register, retire)))
