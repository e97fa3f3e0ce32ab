"""``storegw provision sticker key-install|key-show|write|verify|lock``: NFC tap stickers.

A sticker at a placement carries
``https://{base}/t/{store}/{placement}?k={key id}[&st={staff}]&s={sig}&m={UID}x{counter}``,
signed with the store's sticker key; the tag mirrors its own UID and tap counter into ``m``
(drivers/nfc/sticker/). The key is the cloud's: it issues it for the store
(``storegw sim cloud sticker-key --store S001 --out FILE`` in the simulator), so the cloud, where
a phone's tap lands, can verify every sticker. ``key-install FILE`` puts it into
``data_dir/sticker.key`` (mode 0600); it is never printed, only its key id. These commands
open the NFC reader themselves, so stop the daemon first if it uses the same reader.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from provisioning import _ui
from provisioning._ui import DEFAULT_CONFIG, ConfigOpt, JsonOpt

if TYPE_CHECKING:
    from drivers.nfc.codec import StickerKey
    from drivers.nfc.sticker import StickerWriter

app = typer.Typer(
    help="NFC tap stickers: install the cloud's key, write a signed URL the tag mirrors its "
    "UID and tap counter into, verify it, lock it for good.",
    no_args_is_help=True,
)

KEY_FILE = "sticker.key"
SAME_TAG_PAUSE_S = 0.3
"""Between looks at the reader while the sticker just written still lies on it."""
T = TypeVar("T")

ReaderOpt = Annotated[
    str,
    typer.Option("--device", help="nfcpy reader path: usb, tty:USB0, udp:127.0.0.1:PORT."),
]
BaseOpt = Annotated[
    str,
    typer.Option(
        "--base",
        envvar="STOREGW_STICKER_BASE",
        help="Host of the tap URL, e.g. t.example.com.",
    ),
]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", min=1, max=600, help="Seconds to wait for each sticker.")
]


def load_key(data_dir: Path) -> StickerKey:
    """The store's sticker key, as installed from the cloud's key file."""
    from drivers.nfc.codec import StickerKey

    path = data_dir / KEY_FILE
    if not path.exists():
        raise _ui.fail(
            f"no sticker key in {path}: install the key the cloud issued for this store with "
            "'storegw provision sticker key-install FILE'"
        )
    try:
        return StickerKey.from_file(path)
    except ValueError as exc:
        raise _ui.fail(f"{path}: {exc}") from None


def _install(path: Path, text: str) -> None:
    """Write a key file 0600 from the start (never world-readable, not even for a moment)."""
    tmp = path.with_name(path.name + ".new")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


@app.command("key-install")
def key_install(
    key_file: Annotated[
        Path, typer.Argument(help="The key file the cloud issued (key id:hex, 0600).")
    ],
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Install the store's sticker key from the cloud; stickers written from now use it.

    Example: storegw provision sticker key-install /media/usb/S001-k2.key
    Stickers written with an earlier key keep verifying at the cloud until it retires that key.
    """
    from drivers.nfc.codec import StickerKey

    cfg = _ui.load(config)
    try:
        key = StickerKey.from_file(key_file)
    except (OSError, ValueError) as exc:
        raise _ui.fail(f"{key_file}: {exc}") from None
    data_dir = cfg.gateway.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    _install(data_dir / KEY_FILE, key.file_text())
    _ui.say(f"sticker key {key.key_id} installed in {data_dir / KEY_FILE} (0600)", "green")


@app.command("key-show")
def key_show(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Print the installed sticker key's id (never the key)."""
    cfg = _ui.load(config)
    typer.echo(load_key(cfg.gateway.data_dir).key_id)


def _writer(config: Path, device: str, base: str) -> tuple[str, StickerWriter]:
    from drivers.nfc.sticker import StickerWriter

    cfg = _ui.load(config)
    key = load_key(cfg.gateway.data_dir)
    try:
        return cfg.gateway.store_id, StickerWriter(device, key, base=base)
    except ValueError as exc:
        raise _ui.fail(f"--base {base!r}: {exc}", code=2) from None


@dataclass
class Row:
    uid: str
    placement: str
    ok: bool
    reason: str = ""


def _placements(pattern: str, batch: int, start: int) -> list[str]:
    try:
        return [pattern.format(n=n) for n in range(start, start + batch)]
    except (KeyError, IndexError, ValueError) as exc:
        raise _ui.fail(f"--placement {pattern!r} is not a pattern with {{n}}: {exc}") from None


def _confirm_lock(yes: bool, what: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise _ui.fail(f"locking is permanent: pass --yes to lock {what}", code=2)
    if not typer.confirm(f"Lock {what} for good? It can never be rewritten", default=False):
        raise _ui.fail("not locked")


async def _next_new_tag(
    writer: StickerWriter, done: set[str], deadline: float, timeout: float
) -> str:
    """The UID of a sticker not handled yet: the one just written may still lie on the reader."""
    from drivers.nfc.sticker import NoTagError

    loop = asyncio.get_running_loop()
    while (left := deadline - loop.time()) > 0:
        seen = await writer.read(timeout=left)
        if seen.uid not in done:
            return seen.uid
        await asyncio.sleep(SAME_TAG_PAUSE_S)
    raise NoTagError(f"no new sticker within {timeout:g}s")


async def _write_all(
    writer: StickerWriter,
    store: str,
    placements: list[str],
    *,
    staff: str | None,
    protect: bool,
    lock: bool,
    timeout: float,
    progress: Any,
) -> list[Row]:
    from drivers.nfc.sticker import NoTagError, StickerError

    rows: list[Row] = []
    done: set[str] = set()
    task = progress.add_task("stickers", total=len(placements)) if progress else None
    loop = asyncio.get_running_loop()
    for i, placement in enumerate(placements, 1):
        if len(placements) > 1:
            _ui.say(f"[{i}/{len(placements)}] place the sticker for {placement} on the reader")
        deadline = loop.time() + timeout
        seen_uid = "-"
        try:
            seen_uid = await _next_new_tag(writer, done, deadline, timeout)
            result = await writer.write(
                store,
                placement,
                staff=staff,
                protect=protect,
                lock=lock,
                confirm=lock,
                timeout=max(1.0, deadline - loop.time()),
            )
            done.add(result.uid)
            rows.append(Row(result.uid, placement, True, "locked" if result.locked else ""))
        except NoTagError as exc:
            rows.append(Row("-", placement, False, str(exc) or "no sticker"))
            break  # the roll has ended or nobody is there: stop asking
        except (StickerError, ValueError) as exc:
            done.add(seen_uid)
            rows.append(Row(seen_uid, placement, False, str(exc)))
        if progress is not None:
            progress.update(task, advance=1)
    return rows


@app.command()
def write(
    placement: Annotated[
        str,
        typer.Option(
            "--placement",
            help="Where it goes (counter-1), or a pattern with --batch: shelf-{n:02d}.",
        ),
    ],
    *,
    config: ConfigOpt = DEFAULT_CONFIG,
    device: ReaderOpt = "usb",
    base: BaseOpt,
    batch: Annotated[
        int, typer.Option("--batch", min=1, max=1000, help="Write a roll of N stickers.")
    ] = 1,
    start: Annotated[int, typer.Option("--start", help="First {n} of the pattern.")] = 1,
    protect: Annotated[
        bool, typer.Option("--protect", help="Set a per-tag write password.")
    ] = False,
    lock: Annotated[
        bool, typer.Option("--lock", help="Make the sticker read-only for good (asks).")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask before locking.")] = False,
    staff: Annotated[
        str | None,
        typer.Option("--staff", help="The staff member (导购) joins by this sticker count for."),
    ] = None,
    timeout: TimeoutOpt = 30.0,
    as_json: JsonOpt = False,
) -> None:
    """Write the signed tap URL of a placement to a sticker, turn on its UID and counter
    mirror, read back and checked.

    Example:
      storegw provision sticker write --device usb --base t.example.com --placement counter-1
    A roll of 20:
      storegw provision sticker write --batch 20 --placement 'shelf-{n:02d}' --base t.example.com
    """
    if protect and lock:
        raise _ui.fail("choose --protect (password) or --lock (permanent), not both", code=2)
    placements = _placements(placement, batch, start) if batch > 1 else [placement]
    if lock:
        _confirm_lock(yes, f"{len(placements)} sticker(s)")
    from drivers.nfc.sticker import ReaderUnavailable

    store, writer = _writer(config, device, base)

    async def run(progress: Any) -> list[Row]:
        async with writer:
            return await _write_all(
                writer,
                store,
                placements,
                staff=staff,
                protect=protect,
                lock=lock,
                timeout=timeout,
                progress=progress,
            )

    if batch == 1:
        _ui.say(f"place the sticker for {placements[0]} on the reader ({timeout:g}s)...", "cyan")
    console = _ui.console()
    try:
        if console.is_terminal and batch > 1 and not as_json:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
            with Progress(*columns, console=console) as progress:
                rows = asyncio.run(run(progress))
        else:
            rows = asyncio.run(run(None))
    except ReaderUnavailable as exc:
        raise _ui.fail(str(exc)) from None
    if as_json:
        _ui.print_json([r.__dict__ for r in rows])
    else:
        _ui.table(
            f"{sum(r.ok for r in rows)} of {len(placements)} sticker(s) written for {store}",
            ["uid", "placement", "result", "reason"],
            [(r.uid, r.placement, "ok" if r.ok else "failed", r.reason) for r in rows],
        )
    if len(rows) < len(placements) or not all(r.ok for r in rows):
        raise typer.Exit(1)


def _at_reader(timeout: float, job: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Ask for the sticker and run ``job``; what the sticker tool raises becomes a CLI failure."""
    from drivers.nfc.sticker import ReaderUnavailable, StickerError

    _ui.say(f"place the sticker on the reader ({timeout:g}s)...", "cyan")
    try:
        return asyncio.run(job())
    except (ReaderUnavailable, StickerError) as exc:
        raise _ui.fail(str(exc) or type(exc).__name__) from None


@app.command()
def verify(
    config: ConfigOpt = DEFAULT_CONFIG,
    device: ReaderOpt = "usb",
    *,
    base: BaseOpt,
    timeout: TimeoutOpt = 30.0,
    as_json: JsonOpt = False,
) -> None:
    """Read a sticker and check its URL's signature against its UID (exit 1 if it fails).

    Example: storegw provision sticker verify --device usb --base t.example.com
    """
    _, writer = _writer(config, device, base)

    async def run() -> Any:
        async with writer:
            return await writer.read(timeout=timeout)

    read = _at_reader(timeout, run)
    if as_json:
        _ui.print_json(read.model_dump(mode="json"))
    else:
        rows = [
            ("uid", read.uid),
            ("model", read.model or "-"),
            ("url", read.url or "-"),
            ("store", read.store or "-"),
            ("placement", read.placement or "-"),
            ("staff", read.staff or "-"),
            ("key id", read.key_id or "-"),
            ("counter", "-" if read.counter is None else str(read.counter)),
            ("protected", str(read.protected).lower()),
            ("locked", str(read.locked).lower()),
            ("valid", "yes" if read.valid else f"NO ({read.problem})"),
        ]
        _ui.table("sticker", ["field", "value"], rows)
    if not read.valid:
        raise typer.Exit(1)


@app.command()
def lock(
    config: ConfigOpt = DEFAULT_CONFIG,
    device: ReaderOpt = "usb",
    *,
    base: BaseOpt,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask; lock at once.")] = False,
    timeout: TimeoutOpt = 30.0,
) -> None:
    """Make a valid sticker read-only for good (its own placement is written again, locked).

    Example: storegw provision sticker lock --device usb --base t.example.com --yes
    """
    _confirm_lock(yes, "the sticker on the reader")
    store, writer = _writer(config, device, base)

    async def run() -> Any:
        async with writer:
            read = await writer.read(timeout=timeout)
            if not read.valid or read.placement is None:
                raise _ui.fail(f"sticker {read.uid} is not valid ({read.problem}); write it first")
            if read.store != store:
                raise _ui.fail(f"sticker {read.uid} belongs to store {read.store}, not {store}")
            return await writer.write(
                store, read.placement, staff=read.staff, lock=True, confirm=True, timeout=timeout
            )

    result = _at_reader(timeout, run)
    _ui.say(f"sticker {result.uid} ({result.placement}) locked", "green")
