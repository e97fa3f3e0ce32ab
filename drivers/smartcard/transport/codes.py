"""PC/SC return codes and card states, and the one exception a winscard call raises."""

from __future__ import annotations

from core.errors import StoregwError, StrEnum

# pcsc-lite return codes (winscard.h / pcsclite.h); pyscard hands them out signed or unsigned.
S_SUCCESS = 0x00000000
E_CANCELLED = 0x80100002
E_INVALID_HANDLE = 0x80100003
E_UNKNOWN_READER = 0x80100009
E_TIMEOUT = 0x8010000A
E_SHARING_VIOLATION = 0x8010000B
E_NO_SMARTCARD = 0x8010000C
F_COMM_ERROR = 0x80100013
E_NOT_TRANSACTED = 0x80100016
E_READER_UNAVAILABLE = 0x80100017
E_NO_SERVICE = 0x8010001D
E_SERVICE_STOPPED = 0x8010001E
E_NO_READERS_AVAILABLE = 0x8010002E
E_COMM_DATA_LOST = 0x8010002F
W_UNRESPONSIVE_CARD = 0x80100066
W_UNPOWERED_CARD = 0x80100067
W_RESET_CARD = 0x80100068
W_REMOVED_CARD = 0x80100069

SERVICE_LOST = frozenset({E_NO_SERVICE, E_SERVICE_STOPPED, F_COMM_ERROR, E_INVALID_HANDLE})
"""Codes that mean pcscd itself is unreachable (F_COMM_ERROR: the daemon's socket broke)."""

_CODE_NAMES = {
    E_CANCELLED: "SCARD_E_CANCELLED",
    E_INVALID_HANDLE: "SCARD_E_INVALID_HANDLE",
    E_UNKNOWN_READER: "SCARD_E_UNKNOWN_READER",
    E_TIMEOUT: "SCARD_E_TIMEOUT",
    E_SHARING_VIOLATION: "SCARD_E_SHARING_VIOLATION",
    E_NO_SMARTCARD: "SCARD_E_NO_SMARTCARD",
    F_COMM_ERROR: "SCARD_F_COMM_ERROR",
    E_NOT_TRANSACTED: "SCARD_E_NOT_TRANSACTED",
    E_READER_UNAVAILABLE: "SCARD_E_READER_UNAVAILABLE",
    E_NO_SERVICE: "SCARD_E_NO_SERVICE",
    E_SERVICE_STOPPED: "SCARD_E_SERVICE_STOPPED",
    E_NO_READERS_AVAILABLE: "SCARD_E_NO_READERS_AVAILABLE",
    E_COMM_DATA_LOST: "SCARD_E_COMM_DATA_LOST",
    W_UNRESPONSIVE_CARD: "SCARD_W_UNRESPONSIVE_CARD",
    W_UNPOWERED_CARD: "SCARD_W_UNPOWERED_CARD",
    W_RESET_CARD: "SCARD_W_RESET_CARD",
    W_REMOVED_CARD: "SCARD_W_REMOVED_CARD",
}

STATE_CHANGED = 0x0002
STATE_UNKNOWN = 0x0004
STATE_UNAVAILABLE = 0x0008
STATE_PRESENT = 0x0020
STATE_MUTE = 0x0200

PNP_READER = "\\\\?PnP?\\Notification"
"""pcsc-lite signals reader arrival and departure as a state change of this pseudo reader."""


def normalize_code(code: int) -> int:
    return code & 0xFFFFFFFF


def code_name(code: int) -> str:
    code = normalize_code(code)
    return _CODE_NAMES.get(code, f"0x{code:08X}")


class PcscProblem(StrEnum):
    """What a failed winscard call means for the card or for the service."""

    PCSC_UNAVAILABLE = "pcsc_unavailable"
    UNPOWERED = "unpowered"
    CARD_MUTE = "card_mute"
    CARD_REMOVED = "card_removed"
    READER_BUSY = "reader_busy"
    TRANSMISSION = "transmission"


class PcscError(StoregwError):
    """A winscard call failed; ``status`` is the unsigned 32-bit PC/SC return code and
    ``code`` its :class:`PcscProblem`."""

    def __init__(self, call: str, status: int) -> None:
        self.call = call
        self.status = normalize_code(status)
        problem = (
            PcscProblem.PCSC_UNAVAILABLE if self.service_lost else card_error_reason(self.status)
        )
        super().__init__(problem, f"{call}: {code_name(self.status)} (0x{self.status:08X})")

    @property
    def code_hex(self) -> str:
        return f"0x{self.status:08X}"

    @property
    def service_lost(self) -> bool:
        return self.status in SERVICE_LOST


def card_error_reason(code: int) -> PcscProblem:
    """The error event reason for a failed card operation."""
    code = normalize_code(code)
    if code == W_UNPOWERED_CARD:
        return PcscProblem.UNPOWERED
    if code in (W_UNRESPONSIVE_CARD, E_TIMEOUT):
        return PcscProblem.CARD_MUTE
    if code in (W_REMOVED_CARD, E_NO_SMARTCARD, W_RESET_CARD):
        return PcscProblem.CARD_REMOVED
    if code == E_SHARING_VIOLATION:
        return PcscProblem.READER_BUSY
    return PcscProblem.TRANSMISSION


def check(call: str, hresult: int) -> None:
    if normalize_code(hresult) != S_SUCCESS:
        raise PcscError(call, hresult)
