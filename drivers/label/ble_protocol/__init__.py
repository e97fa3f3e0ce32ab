"""The BLE shelf-label protocol, without a radio: frames, chunking, CRCs and the sender's state.

Modelled on the Bluetooth ESL service (Electronic Shelf Label): commands carry the label's ESL id,
opcodes and error codes follow ESL where ESL has one (Ping, Display Image, LED Control; Basic
State, Display State, LED State and Error responses). ESL moves images with the Object Transfer
Service; this protocol instead writes them in acknowledged chunks, which a small label firmware
can implement in a few hundred lines. It is therefore "ESL-style", not ESL-conformant.

GATT layout (one custom service):

* control point (write with response + notify): commands, and every response as a notification
* image data (write without response): ``IMAGE_CHUNK`` frames

All integers are little-endian. Every frame starts ``opcode:u8, esl_id:u8``.

Commands (gateway -> label)::

    PING           0x00
    DISPLAY_IMAGE  0x20  display_index:u8 image_index:u8
    IMAGE_BEGIN    0x30  image_index:u8 width:u16 height:u16 format:u8 total_len:u32
                         crc32:u32 chunk_size:u16
    IMAGE_CHUNK    0x31  seq:u16 crc16:u16 data[...]      (on the image data characteristic)
    IMAGE_END      0x32  image_index:u8
    LED_CONTROL    0xB0  led_index:u8 color:u8 pattern[5] off_period:u8 on_period:u8 repeat:u16

Responses (label -> gateway, notifications)::

    ERROR          0x00  code:u8                           (ESL error codes)
    LED_STATE      0x01  led_index:u8
    BASIC_STATE    0x10  flags:u16 battery_mv:u16 image_index:u8 (0xFF: none shown)
    DISPLAY_STATE  0x11  display_index:u8 image_index:u8
    IMAGE_READY    0x30  image_index:u8 chunk_count:u16
    CHUNK_ACK      0x31  seq:u16 status:u8                 (0 ok, 1 bad crc, 2 out of range, ...)
    IMAGE_VERIFY   0x32  image_index:u8 status:u8 crc32:u32

A transfer is ``IMAGE_BEGIN`` -> ``IMAGE_READY``; then up to ``window`` chunks in flight, each
acknowledged (a chunk whose CRC-16 fails is NAKed and sent again); ``IMAGE_END`` -> the label
checks the CRC-32 of the whole image -> ``IMAGE_VERIFY``; ``DISPLAY_IMAGE`` -> ``DISPLAY_STATE``.
A missing response is a timeout: the sender repeats what is outstanding (the label treats
repeats idempotently) and gives up after ``max_retries`` timeouts in a row.

Image format 0x01: two 1-bit planes, black then red, rows top to bottom, most significant bit
first, each row padded to a whole byte; a set bit means ink.

CRC-16 is CRC-16/CCITT-FALSE (``binascii.crc_hqx(data, 0xFFFF)``); CRC-32 is zlib's.
"""

from drivers.label.ble_protocol.commands import (
    Command,
    DisplayImage,
    ImageBegin,
    ImageChunk,
    ImageEnd,
    LedControl,
    Ping,
    parse_command,
)
from drivers.label.ble_protocol.image import (
    chunk,
    crc16,
    crc32,
    pack_bwr,
    plane_size,
    unpack_bwr,
)
from drivers.label.ble_protocol.responses import (
    BasicState,
    ChunkAck,
    DisplayState,
    ErrorResponse,
    ImageReady,
    ImageVerify,
    LedState,
    Response,
    parse_response,
)
from drivers.label.ble_protocol.spec import (
    BROADCAST_ESL_ID,
    CHUNK_HEADER,
    CONTROL_POINT_UUID,
    FORMAT_BWR_PLANES,
    IMAGE_DATA_UUID,
    NO_IMAGE,
    SERVICE_UUID,
    AckStatus,
    BasicFlags,
    BleProblem,
    EslError,
    LabelRefused,
    NoResponse,
    Op,
    ProtocolError,
    Rsp,
    TransferFailed,
    VerifyFailed,
    VerifyStatus,
    led_color,
)
from drivers.label.ble_protocol.transfer import (
    Channel,
    ImageTransfer,
    Outgoing,
    Phase,
    TransferStats,
)

__all__ = [
    "BROADCAST_ESL_ID",
    "CHUNK_HEADER",
    "CONTROL_POINT_UUID",
    "FORMAT_BWR_PLANES",
    "IMAGE_DATA_UUID",
    "NO_IMAGE",
    "SERVICE_UUID",
    "AckStatus",
    "BasicFlags",
    "BasicState",
    "BleProblem",
    "Channel",
    "ChunkAck",
    "Command",
    "DisplayImage",
    "DisplayState",
    "ErrorResponse",
    "EslError",
    "ImageBegin",
    "ImageChunk",
    "ImageEnd",
    "ImageReady",
    "ImageTransfer",
    "ImageVerify",
    "LabelRefused",
    "LedControl",
    "LedState",
    "NoResponse",
    "Op",
    "Outgoing",
    "Phase",
    "Ping",
    "ProtocolError",
    "Response",
    "Rsp",
    "TransferFailed",
    "TransferStats",
    "VerifyFailed",
    "VerifyStatus",
    "chunk",
    "crc16",
    "crc32",
    "led_color",
    "pack_bwr",
    "parse_command",
    "parse_response",
    "plane_size",
    "unpack_bwr",
]
