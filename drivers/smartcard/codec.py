"""Pure ISO 7816-4 / PC/SC helpers: APDUs in, status words and member numbers out.

No I/O here, so every rule is tested with byte scripts. Hex strings are upper case without
separators (``3B8F80...``), the form PC/SC tools and ATR parsers print.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from core.errors import StoregwError, StrEnum

SW_OK = 0x9000
SW_END_OF_FILE = 0x6282
"""Fewer bytes than Le were available; the data is still good (ISO 7816-4 warning)."""
SW_NOT_FOUND = 0x6A82
"""SELECT: no such application. For the member applet it means "not a member card"."""

MAX_ROUNDS = 8
"""61xx/6Cxx follow-ups allowed per command; a card that keeps asking for more is broken."""

_SW_NAMES: dict[int, str] = {
    0x9000: "ok",
    0x6282: "end of file reached before Le bytes",
    0x6700: "wrong length",
    0x6982: "security status not satisfied",
    0x6985: "conditions of use not satisfied",
    0x6986: "command not allowed (no current EF)",
    0x6A81: "function not supported",
    0x6A82: "file or application not found",
    0x6A86: "incorrect P1-P2",
    0x6B00: "wrong parameters (offset outside the EF)",
    0x6D00: "instruction not supported",
    0x6E00: "class not supported",
    0x6F00: "no precise diagnosis",
}


class CardProblem(StrEnum):
    BAD_HEX = "bad_hex"
    BAD_APDU = "bad_apdu"
    BAD_RESPONSE = "bad_response"
    BAD_ATR = "bad_atr"
    BAD_UID = "bad_uid"
    MEMBER_NO = "member_no"


class CodecError(StoregwError, ValueError):
    """Bytes that cannot be what they should be; ``reason`` becomes the error event's reason."""

    def __init__(self, reason: CardProblem, message: str) -> None:
        super().__init__(reason, message)
        self.reason = reason


def hexstr(data: bytes) -> str:
    return data.hex().upper()


def parse_hex(text: str) -> bytes:
    """Hex as people type it in config files: spaces and colons allowed, any case."""
    cleaned = "".join(text.split()).replace(":", "")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise CodecError(CardProblem.BAD_HEX, f"not hex: {text!r}") from None


# --- commands -------------------------------------------------------------------------


def build_apdu(
    cla: int, ins: int, p1: int, p2: int, *, data: bytes = b"", le: int | None = None
) -> bytes:
    """A short APDU (ISO 7816-4 cases 1-4); ``le`` 1..256, where 256 is sent as 00."""
    for name, value in (("cla", cla), ("ins", ins), ("p1", p1), ("p2", p2)):
        if not 0 <= value <= 0xFF:
            raise CodecError(CardProblem.BAD_APDU, f"{name} out of range: {value}")
    if len(data) > 255:
        raise CodecError(
            CardProblem.BAD_APDU, f"command data too long for a short APDU: {len(data)}"
        )
    apdu = bytes([cla, ins, p1, p2])
    if data:
        apdu += bytes([len(data)]) + data
    if le is not None:
        if not 1 <= le <= 256:
            raise CodecError(CardProblem.BAD_APDU, f"le out of range: {le}")
        apdu += bytes([le & 0xFF])
    return apdu


GET_UID = build_apdu(0xFF, 0xCA, 0x00, 0x00, le=256)
"""PC/SC part 3 GET DATA for the card's UID; Le 00 asks for all of it."""


def select_aid(aid: bytes) -> bytes:
    if not 5 <= len(aid) <= 16:
        raise CodecError(CardProblem.BAD_APDU, f"an AID has 5 to 16 bytes, not {len(aid)}")
    return build_apdu(0x00, 0xA4, 0x04, 0x00, data=aid)


def read_binary(offset: int = 0, length: int | None = None) -> bytes:
    """READ BINARY of the selected EF; ``length`` None sends Le 00 (whatever the file holds)."""
    if not 0 <= offset <= 0x7FFF:
        raise CodecError(CardProblem.BAD_APDU, f"offset out of range: {offset}")
    return build_apdu(0x00, 0xB0, offset >> 8, offset & 0xFF, le=256 if length is None else length)


def get_response(le: int) -> bytes:
    return build_apdu(0x00, 0xC0, 0x00, 0x00, le=le)


def with_le(command: bytes, le: int) -> bytes:
    """``command`` with its Le replaced (or added): how a 6Cxx answer is honoured."""
    if len(command) < 4:
        raise CodecError(CardProblem.BAD_APDU, "an APDU has at least 4 bytes")
    body = command[:4]
    if len(command) > 5:  # case 3 or 4: header, Lc, data (and maybe Le)
        lc = command[4]
        body = command[: 5 + lc]
    return body + bytes([le & 0xFF])


# --- responses ------------------------------------------------------------------------


class Response(BaseModel):
    """A response APDU: data and the status word that ends it."""

    model_config = ConfigDict(frozen=True)

    data: bytes
    sw: int

    @property
    def sw_hex(self) -> str:
        return f"{self.sw:04X}"

    @property
    def ok(self) -> bool:
        """9000, or 6282 (short file) which still carries usable data."""
        return self.sw in (SW_OK, SW_END_OF_FILE)


def parse_response(raw: bytes) -> Response:
    if len(raw) < 2:
        raise CodecError(
            CardProblem.BAD_RESPONSE, f"response too short for a status word: {hexstr(raw)!r}"
        )
    return Response(data=bytes(raw[:-2]), sw=(raw[-2] << 8) | raw[-1])


def describe_sw(sw: int) -> str:
    if sw in _SW_NAMES:
        return _SW_NAMES[sw]
    sw1 = sw >> 8
    if sw1 == 0x61:
        return f"{sw & 0xFF or 256} more bytes available"
    if sw1 == 0x6C:
        return f"wrong Le, {sw & 0xFF or 256} bytes available"
    if sw1 == 0x63:
        return "warning, state changed"
    return "unknown status word"


class Exchange:
    """One command with its 61xx (GET RESPONSE) and 6Cxx (resend with Le=xx) follow-ups.

    Sans-IO: send :attr:`command`, :meth:`feed` the raw answer, repeat while it returns None.
    """

    def __init__(self, command: bytes, max_rounds: int = MAX_ROUNDS) -> None:
        self.command = command
        self._data = b""
        self._rounds = 0
        self._max_rounds = max_rounds

    def feed(self, raw: bytes) -> Response | None:
        response = parse_response(raw)
        sw1, sw2 = response.sw >> 8, response.sw & 0xFF
        if sw1 not in (0x61, 0x6C):
            return Response(data=self._data + response.data, sw=response.sw)
        self._rounds += 1
        if self._rounds > self._max_rounds:
            raise CodecError(
                CardProblem.BAD_RESPONSE,
                f"card still answers {response.sw_hex} after {self._max_rounds} rounds",
            )
        if sw1 == 0x61:
            self._data += response.data
            self.command = get_response(sw2 or 256)
        else:
            self.command = with_le(self.command, sw2)
        return None


# --- decoded values -------------------------------------------------------------------


def format_atr(atr: bytes) -> str:
    """The ATR as hex; refuses what cannot be an ATR (ISO 7816-3: TS 3B/3F, at most 33 bytes)."""
    if not 2 <= len(atr) <= 33:
        raise CodecError(CardProblem.BAD_ATR, f"an ATR has 2 to 33 bytes, not {len(atr)}")
    if atr[0] not in (0x3B, 0x3F):
        raise CodecError(CardProblem.BAD_ATR, f"ATR starts with {atr[0]:02X}, not 3B or 3F")
    return hexstr(atr)


def format_uid(uid: bytes) -> str:
    """The UID as hex: 4, 7 or 10 bytes for ISO 14443 cards, up to 16 for others."""
    if not 1 <= len(uid) <= 16:
        raise CodecError(CardProblem.BAD_UID, f"a UID has 1 to 16 bytes, not {len(uid)}")
    return hexstr(uid)


_PADDING = b"\x00\xff "
MAX_MEMBER_DIGITS = 32


def decode_member_no(data: bytes) -> str:
    """ASCII digits, right-padded with 00, FF or spaces as fixed-size files usually are."""
    text = data.rstrip(_PADDING)
    if not text:
        raise CodecError(CardProblem.MEMBER_NO, "member file is empty")
    if len(text) > MAX_MEMBER_DIGITS:
        raise CodecError(
            CardProblem.MEMBER_NO, f"member number longer than {MAX_MEMBER_DIGITS} digits"
        )
    if not all(0x30 <= b <= 0x39 for b in text):
        raise CodecError(
            CardProblem.MEMBER_NO, f"member number is not ASCII digits: {hexstr(text)}"
        )
    return text.decode("ascii")


__all__ = [
    "GET_UID",
    "MAX_MEMBER_DIGITS",
    "SW_END_OF_FILE",
    "SW_NOT_FOUND",
    "SW_OK",
    "CardProblem",
    "CodecError",
    "Exchange",
    "Response",
    "build_apdu",
    "decode_member_no",
    "describe_sw",
    "format_atr",
    "format_uid",
    "get_response",
    "hexstr",
    "parse_hex",
    "parse_response",
    "read_binary",
    "select_aid",
    "with_le",
]
