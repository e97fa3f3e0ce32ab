"""What every frame shares: ``opcode:u8, esl_id:u8``, then a fixed little-endian body."""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from drivers.label.ble_protocol.spec import ProtocolError


@dataclass(frozen=True, slots=True)
class Packed:
    """How a field stands in a frame's body: its ``struct`` format character."""

    code: str


U8 = Annotated[int, Field(ge=0, le=0xFF), Packed("B")]
U16 = Annotated[int, Field(ge=0, le=0xFFFF), Packed("H")]
U32 = Annotated[int, Field(ge=0, le=0xFFFFFFFF), Packed("I")]

_HEADER = ("op", "esl_id")


class Frame(BaseModel):
    """A frame whose body is ``BODY`` packed from the fields named in ``FIELDS``.

    Both follow from the fields a frame declares after the header, in order, so the layout is
    written once. Frames whose body is not one fixed struct set ``BODY`` themselves and
    override :meth:`encode` and :meth:`decode`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    BODY: ClassVar[struct.Struct] = struct.Struct("<")
    FIELDS: ClassVar[tuple[str, ...]] = ()

    op: int
    esl_id: U8

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "BODY" in cls.__dict__:
            return
        names = tuple(name for name in cls.model_fields if name not in _HEADER)
        codes = [_packed(cls, name) for name in names]
        cls.FIELDS = names
        cls.BODY = struct.Struct("<" + "".join(codes))

    def encode(self) -> bytes:
        values = (getattr(self, name) for name in self.FIELDS)
        return bytes((self.op, self.esl_id)) + self.BODY.pack(*values)

    @classmethod
    def decode(cls, esl_id: int, body: bytes) -> Self:
        return cls(esl_id=esl_id, **dict(zip(cls.FIELDS, cls.BODY.unpack(body), strict=True)))


def _packed(frame: type[Frame], name: str) -> str:
    for meta in frame.model_fields[name].metadata:
        if isinstance(meta, Packed):
            return meta.code
    raise TypeError(f"{frame.__name__}.{name} has no fixed packing: the frame must set BODY")


OpT = TypeVar("OpT", bound=enum.IntEnum)
FrameT = TypeVar("FrameT", bound=Frame)


def parse_frame(
    frame: bytes,
    opcode: Callable[[int], OpT],
    kinds: Mapping[OpT, type[FrameT]],
    fits: Callable[[type[FrameT], int], bool],
    what: str,
) -> FrameT:
    """Decode ``frame`` by its opcode; :class:`ProtocolError` for anything malformed."""
    if len(frame) < 2:
        raise ProtocolError(f"frame too short ({len(frame)} bytes)")
    try:
        kind = opcode(frame[0])
    except ValueError:
        raise ProtocolError(f"unknown {what} opcode 0x{frame[0]:02x}") from None
    model = kinds[kind]
    body = bytes(frame[2:])
    if not fits(model, len(body)):
        raise ProtocolError(f"{kind.name}: {len(frame)} bytes is not a valid length")
    return model.decode(frame[1], body)
