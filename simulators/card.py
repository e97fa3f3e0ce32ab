"""A virtual member card for vsmartcard's ``vpcd`` reader driver in pcscd.

The card is a TCP client of vpcd (``127.0.0.1:35963`` is reader ``Virtual PCD 00 00``,
``35964`` is ``00 01``): connecting inserts it, disconnecting removes it. When pcscd runs in
a network namespace of its own (tests and the demo start it so: :mod:`simulators.spawn`),
the card connects from inside that namespace. Frames are a
2-byte big-endian length and a payload; a 1-byte payload is control (0 power off, 1 power
on, 2 reset, 4 send the ATR), anything else an APDU answered with data + SW (vpcd's side:
``frankmorgner/vsmartcard`` at ``a85862856ef0f7b521c5bf320e69683399ccc4fc``,
``virtualsmartcard/src/vpcd/vpcd.c`` ``sendToVICC``/``recvFromVICC`` and ``VPCD_CTRL_*`` in
``vpcd.h``).

The card answers:

* ``FF CA 00 00 Le`` GET UID: the UID + 9000 (Le 00 or exact), 6Cxx when Le is too short,
  UID + 6282 when Le is longer than the UID;
* ``00 A4 04 00 Lc AID`` SELECT: 9000 for the member applet (only when the card has a member
  number), else 6A82;
* ``00 B0 P1 P2 Le`` READ BINARY of the member file (the member number in ASCII) once the
  applet is selected: Le 00 returns the rest of the file, a longer Le gets 6Cxx;
* ``00 C0 00 00 Le`` GET RESPONSE when ``chain_responses`` makes it answer T=0 style (61xx);
* 6D00 for an unknown INS, 6E00 for an unknown CLA, 6700 for malformed lengths.

``mute`` cards send their ATR but never answer an APDU (vpcd then blocks until the card
leaves); ``responses`` overrides answers for given commands (unknown status words in tests).
Debian's ``vicc`` crashes on ``FF CA``, hence this card.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Mapping
from typing import Annotated, Self

import typer

from simulators.spawn import connect_in_netns, vpcd_netns

log = logging.getLogger(__name__)

VPCD_PORT = 35963
"""Reader 0; reader N listens on VPCD_PORT + N."""
DEFAULT_UID = "04A1B2C3D4E5F6"
DEFAULT_ATR = "3B8F8001804F0CA000000306030001000000006A"
"""The PC/SC part 3 ATR contactless readers report for a MIFARE Classic 1K."""
DEFAULT_AID = "F05354475701"
"""The storegw member applet: proprietary RID F0 + "STGW" + version 01."""

CTRL_POWER_OFF = 0
CTRL_POWER_ON = 1
CTRL_RESET = 2
CTRL_GET_ATR = 4


def _sw(sw: int) -> bytes:
    return sw.to_bytes(2, "big")


def _hex(value: str | bytes, what: str, min_len: int, max_len: int) -> bytes:
    raw = value if isinstance(value, bytes) else bytes.fromhex("".join(value.split()))
    if not min_len <= len(raw) <= max_len:
        raise ValueError(f"{what} must have {min_len} to {max_len} bytes, not {len(raw)}")
    return raw


class VirtualCard:
    """One card; ``async with`` keeps it inserted, or call :meth:`insert`/:meth:`remove`."""

    def __init__(
        self,
        *,
        uid: str | bytes = DEFAULT_UID,
        atr: str | bytes = DEFAULT_ATR,
        member_no: str | None = None,
        member_file: bytes | None = None,
        aid: str | bytes = DEFAULT_AID,
        port: int = VPCD_PORT,
        host: str = "127.0.0.1",
        mute: bool = False,
        chain_responses: bool = False,
        responses: Mapping[str | bytes, str | bytes] | None = None,
    ) -> None:
        self.uid = _hex(uid, "uid", 1, 16)
        self.atr = _hex(atr, "atr", 2, 33)
        self.aid = _hex(aid, "aid", 5, 16)
        if member_no is not None and not (member_no.isascii() and member_no.isdigit()):
            raise ValueError("member_no must be ASCII digits")
        self.member_no = member_no
        if member_file is None and member_no is not None:
            member_file = member_no.encode("ascii")
        self.member_file = member_file
        """The applet's EF; the card has the member applet only when this is set."""
        self.host, self.port = host, port
        self.mute = mute
        self.chain_responses = chain_responses
        self._responses = {
            _hex(k, "command", 4, 261): _hex(v, "response", 2, 258)
            for k, v in (responses or {}).items()
        }
        self.apdus: list[bytes] = []
        """Every APDU received, for tests to check what a reader sent."""
        self.powered = False
        self._selected = False
        self._pending = b""
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def inserted(self) -> bool:
        return self._task is not None and not self._task.done()

    async def __aenter__(self) -> Self:
        await self.insert()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.remove()

    async def insert(self) -> None:
        """Connect to vpcd; pcscd sees the card ~0.5 s later (it polls the reader)."""
        if self.inserted:
            raise RuntimeError("card is already inserted")
        netns = await asyncio.to_thread(vpcd_netns)
        if netns is None:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        else:
            sock = await asyncio.to_thread(connect_in_netns, netns, self.host, self.port)
            reader, writer = await asyncio.open_connection(sock=sock)
        self._writer = writer
        self.powered = self._selected = False
        self._pending = b""
        self._task = asyncio.create_task(self._serve(reader, writer), name=f"card:{self.port}")

    async def remove(self) -> None:
        """Disconnect; wait for the reader's removal event before inserting again."""
        task, writer = self._task, self._writer
        self._task = self._writer = None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def wait_closed(self) -> None:
        """Return when vpcd drops the connection (pcscd stopped) or :meth:`remove` ran."""
        if self._task is not None:
            await asyncio.gather(asyncio.shield(self._task), return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = struct.unpack(">H", await reader.readexactly(2))
                payload = await reader.readexactly(length)
                answer = self.handle(payload)
                if answer is not None:
                    writer.write(struct.pack(">H", len(answer)) + answer)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            log.debug("vpcd closed the connection", extra={"port": self.port})
        finally:
            writer.close()

    # --- the card itself (no I/O) ---------------------------------------------------

    def handle(self, payload: bytes) -> bytes | None:
        """Answer one vpcd frame; None when there is nothing to send."""
        if len(payload) == 1:
            control = payload[0]
            if control == CTRL_GET_ATR:
                return self.atr
            if control in (CTRL_POWER_ON, CTRL_RESET):
                self.powered, self._selected, self._pending = True, False, b""
            elif control == CTRL_POWER_OFF:
                self.powered = False
            return None
        self.apdus.append(payload)
        if self.mute:
            return None
        return self.respond(payload)

    def respond(self, apdu: bytes) -> bytes:
        if apdu in self._responses:
            return self._responses[apdu]
        answer = self._respond(apdu)
        chained = self.chain_responses and apdu[1:2] != b"\xc0"  # not GET RESPONSE itself
        if chained and len(answer) > 2 and answer[-2:] == _sw(0x9000):
            self._pending = answer[:-2]
            return bytes([0x61, len(self._pending) & 0xFF])
        return answer

    def _respond(self, apdu: bytes) -> bytes:  # noqa: PLR0911 - one return per answer
        if len(apdu) < 4:
            return _sw(0x6700)
        cla, ins, p1, p2 = apdu[:4]
        parsed = _parse_body(apdu[4:])
        if parsed is None:
            return _sw(0x6700)
        data, le = parsed
        if cla == 0xFF:
            if ins != 0xCA:
                return _sw(0x6D00)
            return self._get_uid(le) if (p1, p2) == (0, 0) else _sw(0x6A81)
        if cla != 0x00:
            return _sw(0x6E00)
        if ins == 0xA4:
            return self._select(p1, data)
        if ins == 0xB0:
            return self._read_binary(p1, p2, le)
        if ins == 0xC0:
            return self._get_response(le)
        return _sw(0x6D00)

    def _get_uid(self, le: int | None) -> bytes:
        if le is None or le == 256 or le == len(self.uid):
            return self.uid + _sw(0x9000)
        if le < len(self.uid):
            return _sw(0x6C00 | len(self.uid))
        return self.uid + _sw(0x6282)

    def _select(self, p1: int, aid: bytes) -> bytes:
        if p1 != 0x04:
            return _sw(0x6A86)
        self._selected = self.member_file is not None and aid == self.aid
        return _sw(0x9000) if self._selected else _sw(0x6A82)

    def _read_binary(self, p1: int, p2: int, le: int | None) -> bytes:  # noqa: PLR0911
        if not self._selected or self.member_file is None:
            return _sw(0x6986)
        if p1 & 0x80:
            return _sw(0x6A81)  # short EF identifiers are not supported
        if le is None:
            return _sw(0x6700)
        offset = (p1 << 8) | p2
        if offset > len(self.member_file):
            return _sw(0x6B00)
        rest = self.member_file[offset:]
        if not rest:
            return _sw(0x6282)
        if le == 256:
            return rest[:256] + _sw(0x9000)
        if le > len(rest):
            return _sw(0x6C00 | len(rest))
        return rest[:le] + _sw(0x9000)

    def _get_response(self, le: int | None) -> bytes:
        if not self._pending:
            return _sw(0x6985)
        count = len(self._pending) if le is None or le == 256 else le
        chunk, self._pending = self._pending[:count], self._pending[count:]
        if self._pending:
            return chunk + bytes([0x61, len(self._pending) & 0xFF])
        return chunk + _sw(0x9000)


def _parse_body(body: bytes) -> tuple[bytes, int | None] | None:
    """(command data, Ne) of a short APDU after its header; None when lengths do not add up."""
    if not body:
        return b"", None
    if len(body) == 1:
        return b"", body[0] or 256
    lc = body[0]
    if lc == 0 or len(body) < 1 + lc:
        return None
    data, rest = body[1 : 1 + lc], body[1 + lc :]
    if not rest:
        return data, None
    if len(rest) == 1:
        return data, rest[0] or 256
    return None


# --- CLI ------------------------------------------------------------------------------


async def _hold(card: VirtualCard, seconds: float | None) -> bool:
    """Keep the card in for ``seconds`` (forever when None); False when vpcd went away."""
    try:
        await asyncio.wait_for(card.wait_closed(), seconds)
    except TimeoutError:
        return True
    return False


async def _run(card: VirtualCard, hold: float | None, repeat: bool, gap: float) -> int:
    label = f"reader {card.port - VPCD_PORT} ({card.host}:{card.port})"
    while True:
        try:
            await card.insert()
        except OSError as exc:
            typer.echo(f"cannot reach vpcd at {card.host}:{card.port}: {exc}", err=True)
            typer.echo("is pcscd running with vsmartcard-vpcd? (pcscd -f -a)", err=True)
            return 1
        member = f", member {card.member_no}" if card.member_no else ""
        typer.echo(f"card {card.uid.hex().upper()}{member} inserted in {label}")
        try:
            alive = await _hold(card, hold if hold is not None or not repeat else 2.0)
        finally:
            await card.remove()
        if not alive:
            typer.echo("vpcd closed the connection (pcscd stopped?)", err=True)
            return 1
        typer.echo("card removed")
        if not repeat:
            return 0
        await asyncio.sleep(gap)  # pcscd must see the removal before the next insertion


def command(
    *,
    uid: Annotated[str, typer.Option(help="Card UID, hex (1-16 bytes).")] = DEFAULT_UID,
    atr: Annotated[str, typer.Option(help="Answer to reset, hex.")] = DEFAULT_ATR,
    member_no: Annotated[
        str | None,
        typer.Option("--member-no", help="Member number (digits); without it, no applet."),
    ] = None,
    reader: Annotated[
        int, typer.Option(min=0, max=1, help="vpcd reader: 0 (port 35963) or 1 (35964).")
    ] = 0,
    aid: Annotated[str, typer.Option(help="AID of the member applet, hex.")] = DEFAULT_AID,
    hold: Annotated[
        float | None,
        typer.Option(
            min=0.1, help="Seconds to stay inserted; until Ctrl-C when absent (2 with --repeat)."
        ),
    ] = None,
    repeat: Annotated[
        bool, typer.Option("--repeat", help="Insert and remove in a loop (demos).")
    ] = False,
    gap: Annotated[
        float, typer.Option(min=0.5, help="Seconds out of the reader between repeats.")
    ] = 1.0,
    mute: Annotated[
        bool, typer.Option("--mute", help="Never answer APDUs (error handling demo).")
    ] = False,
    host: Annotated[str, typer.Option(help="Host where pcscd runs vpcd.")] = "127.0.0.1",
) -> None:
    """Insert a virtual member card into a vsmartcard (vpcd) reader of pcscd.

    Example: storegw sim card --member-no 4711 --reader 1 --repeat
    """
    try:
        card = VirtualCard(
            uid=uid,
            atr=atr,
            member_no=member_no,
            aid=aid,
            port=VPCD_PORT + reader,
            host=host,
            mute=mute,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        code = asyncio.run(_run(card, hold, repeat, gap))
    except KeyboardInterrupt:
        typer.echo("stopped")  # asyncio.run cancelled _run, whose finally removed the card
        code = 0
    raise typer.Exit(code)


__all__ = ["DEFAULT_AID", "DEFAULT_ATR", "DEFAULT_UID", "VPCD_PORT", "VirtualCard", "command"]
