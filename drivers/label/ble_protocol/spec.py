"""The protocol's numbers: GATT UUIDs, opcodes, status codes, and the errors an exchange raises."""

from __future__ import annotations

import enum

from core.errors import CodedError, StrEnum

SERVICE_UUID = "5354c0e0-4757-4553-4c00-000000000001"
CONTROL_POINT_UUID = "5354c0e0-4757-4553-4c00-000000000002"
IMAGE_DATA_UUID = "5354c0e0-4757-4553-4c00-000000000003"

BROADCAST_ESL_ID = 0xFF
FORMAT_BWR_PLANES = 0x01
NO_IMAGE = 0xFF
CHUNK_HEADER = 6
"""opcode, esl_id, seq:u16, crc16:u16."""


class Op(enum.IntEnum):
    """Command opcodes (gateway -> label)."""

    PING = 0x00
    DISPLAY_IMAGE = 0x20
    IMAGE_BEGIN = 0x30
    IMAGE_CHUNK = 0x31
    IMAGE_END = 0x32
    LED_CONTROL = 0xB0


class Rsp(enum.IntEnum):
    """Response opcodes (label -> gateway)."""

    ERROR = 0x00
    LED_STATE = 0x01
    BASIC_STATE = 0x10
    DISPLAY_STATE = 0x11
    IMAGE_READY = 0x30
    CHUNK_ACK = 0x31
    IMAGE_VERIFY = 0x32


class EslError(enum.IntEnum):
    """Error codes as in the Bluetooth ESL service."""

    UNSPECIFIED = 0x01
    INVALID_OPCODE = 0x02
    INVALID_STATE = 0x03
    INVALID_IMAGE_INDEX = 0x04
    IMAGE_NOT_AVAILABLE = 0x05
    INVALID_PARAMETERS = 0x06
    CAPACITY_LIMIT = 0x07
    INSUFFICIENT_BATTERY = 0x08
    INSUFFICIENT_RESOURCES = 0x09
    RETRY = 0x0A
    QUEUE_FULL = 0x0B


class AckStatus(enum.IntEnum):
    OK = 0
    BAD_CRC = 1
    OUT_OF_RANGE = 2
    NOT_READY = 3


class VerifyStatus(enum.IntEnum):
    OK = 0
    CRC_MISMATCH = 1
    INCOMPLETE = 2


class BasicFlags(enum.IntFlag):
    """BASIC_STATE flags (the ESL Basic State bits, plus has-LED)."""

    SERVICE_NEEDED = 0x01
    SYNCHRONIZED = 0x02
    ACTIVE_LED = 0x04
    PENDING_LED_UPDATE = 0x08
    PENDING_DISPLAY_UPDATE = 0x10
    HAS_LED = 0x100


class BleProblem(StrEnum):
    """What went wrong in an exchange; also the reason the BLE backend reports."""

    PROTOCOL = "protocol"
    NO_RESPONSE = "no_response"
    TRANSFER_FAILED = "transfer_failed"
    VERIFY_FAILED = "verify_failed"


class ProtocolError(CodedError, problem=BleProblem.PROTOCOL):
    """A frame could not be decoded, or the exchange broke the protocol."""


class LabelRefused(ProtocolError):
    """The label answered with an ESL error code; ``code`` is ``label_<error name>``."""

    def __init__(self, esl_error: int) -> None:
        try:
            name = EslError(esl_error).name.lower()
        except ValueError:
            name = f"0x{esl_error:02x}"
        super().__init__(f"label refused: {name}")
        self.code = f"label_{name}"
        self.esl_error = esl_error
        self.name = name


class TransferFailed(ProtocolError, problem=BleProblem.TRANSFER_FAILED):
    """A chunk kept failing its CRC, or the label broke the transfer."""


class VerifyFailed(TransferFailed, problem=BleProblem.VERIFY_FAILED):
    """The label's CRC-32 of the assembled image is not ours."""


class NoResponse(ProtocolError, problem=BleProblem.NO_RESPONSE):
    """The label stopped answering (out of range, asleep, flat battery)."""


def led_color(name: str, brightness: int = 3) -> int:
    """ESL LED component byte: 2 bits each of red, green, blue, then brightness (bits 6-7)."""
    rgb = {
        "red": (3, 0, 0),
        "green": (0, 3, 0),
        "blue": (0, 0, 3),
        "white": (3, 3, 3),
        "yellow": (3, 3, 0),
    }
    try:
        r, g, b = rgb[name]
    except KeyError:
        raise ValueError(f"unknown LED colour {name!r}; one of {sorted(rgb)}") from None
    return r | (g << 2) | (b << 4) | ((brightness & 3) << 6)
