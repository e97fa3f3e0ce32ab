"""Tags as nfcpy reports them, Type 2 tag memory (TLVs) and the NTAG21x memory maps."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict

from core.events import JsonObject
from drivers.nfc.codec.errors import CapacityError, NdefError
from drivers.nfc.codec.ndef import decode_ndef_json

TagType = Literal["type1", "type2", "type3", "type4"]

_TYPE_NAMES: Final[dict[str, TagType]] = {
    "Type1Tag": "type1",
    "Type2Tag": "type2",
    "Type3Tag": "type3",
    "Type4Tag": "type4",
}


def tag_type(nfcpy_type: str) -> TagType:
    """Map nfcpy's ``Tag.TYPE`` (``Type2Tag``) to the event's ``type`` (``type2``)."""
    try:
        return _TYPE_NAMES[nfcpy_type]
    except KeyError:
        raise ValueError(f"unknown tag type {nfcpy_type!r}") from None


def product_name(nfcpy_product: str | None, nfcpy_type: str) -> str | None:
    """A product name people use (``NTAG213``), or None when nfcpy only knows the tag type."""
    if not nfcpy_product or nfcpy_product == nfcpy_type:
        return None
    return nfcpy_product.removeprefix("NXP ")


def tag_data(
    uid: bytes, nfcpy_type: str, nfcpy_product: str | None, ndef: bytes | None
) -> JsonObject:
    """The ``nfc`` event data for a tag; raises :class:`NdefError` for a malformed message.

    ``ndef`` is the raw message (None when the tag holds no NDEF data), ``uid`` the UID, or
    the IDm for a Type 3 tag.
    """
    records = decode_ndef_json(ndef) if ndef else []
    return {
        "uid": uid.hex(),
        "type": tag_type(nfcpy_type),
        "product": product_name(nfcpy_product, nfcpy_type),
        "ndef": records,
    }


# --- Type 2 tag memory ----------------------------------------------------------------------

TLV_NULL: Final = 0x00
TLV_LOCK_CONTROL: Final = 0x01
TLV_MEMORY_CONTROL: Final = 0x02
TLV_NDEF: Final = 0x03
TLV_PROPRIETARY: Final = 0xFD
TLV_TERMINATOR: Final = 0xFE


def ndef_tlv(message: bytes) -> bytes:
    """The NDEF message TLV (1- or 3-byte length) followed by a terminator TLV."""
    n = len(message)
    if n > 0xFFFE:
        raise ValueError("an NDEF TLV holds at most 65534 bytes")
    length = bytes([n]) if n < 0xFF else b"\xff" + n.to_bytes(2, "big")
    return bytes([TLV_NDEF]) + length + message + bytes([TLV_TERMINATOR])


def find_ndef_tlv(area: bytes) -> bytes | None:
    """The NDEF message in a Type 2 data area (memory from page 4); None if there is none.

    Lock and memory control TLVs are skipped over, not applied: on NTAG21x they point outside
    the data area. Raises :class:`NdefError` when a TLV runs past the area.
    """
    offset = 0
    while offset < len(area):
        t = area[offset]
        offset += 1
        if t == TLV_NULL:
            continue
        if t == TLV_TERMINATOR:
            return None
        if offset >= len(area):
            raise NdefError("TLV length runs past the data area")
        length = area[offset]
        offset += 1
        if length == 0xFF:
            if offset + 2 > len(area):
                raise NdefError("TLV length runs past the data area")
            length = int.from_bytes(area[offset : offset + 2], "big")
            offset += 2
        if offset + length > len(area):
            raise NdefError(f"TLV 0x{t:02x} of {length} bytes runs past the data area")
        if t == TLV_NDEF:
            return area[offset : offset + length]
        offset += length
    return None


# --- NTAG21x --------------------------------------------------------------------------------

NtagModel = Literal["NTAG213", "NTAG215", "NTAG216"]


class NtagSpec(BaseModel):
    """Memory map facts from the NXP NTAG213/215/216 datasheet."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: NtagModel
    pages: int
    """Total pages (4 bytes each), including UID, lock, CC, user memory and configuration."""
    user_bytes: int
    """User memory from page 4 (the NDEF data area)."""
    cc_size: int
    """Capability container byte 2: data area size / 8, as factory-programmed."""
    version: bytes
    """GET_VERSION response."""
    dynamic_lock_page: int
    cfg_page: int
    """CFG0 page (MIRROR, RFU, MIRROR_PAGE, AUTH0); CFG1, PWD and PACK follow."""
    pages_per_lock_bit: int
    """How many user pages above page 15 one dynamic lock bit freezes."""
    factory_area: bytes
    """Data area content as shipped (NTAG213 carries a lock control TLV)."""

    @property
    def ndef_capacity(self) -> int:
        """Largest NDEF message the factory layout holds (what nfcpy reports as capacity)."""
        usable = self.cc_size * 8 - (5 if self.factory_area[:1] == b"\x01" else 0)
        return usable - (4 if usable > 256 else 2)


def _ntag(
    model: NtagModel, pages: int, cc_size: int, version: str, lock_bit: int, *, factory: str
) -> NtagSpec:
    """The map every NTAG21x shares: pages 0-3 UID, lock and CC, then user memory, then the
    dynamic lock page and the four configuration pages (CFG0, CFG1, PWD, PACK) at the end."""
    return NtagSpec(
        model=model,
        pages=pages,
        user_bytes=(pages - 9) * 4,
        cc_size=cc_size,
        version=bytes.fromhex(version),
        dynamic_lock_page=pages - 5,
        cfg_page=pages - 4,
        pages_per_lock_bit=lock_bit,
        factory_area=bytes.fromhex(factory),
    )


NTAG_SPECS: Final[dict[NtagModel, NtagSpec]] = {
    "NTAG213": _ntag("NTAG213", 45, 0x12, "0004040201000f03", 2, factory="0103a00c340300fe"),
    "NTAG215": _ntag("NTAG215", 135, 0x3E, "0004040201001103", 16, factory="0300fe00"),
    "NTAG216": _ntag("NTAG216", 231, 0x6D, "0004040201001303", 16, factory="0300fe00"),
}


def ntag_model(product: str | None) -> NtagModel | None:
    """``NTAG213`` for nfcpy's ``NXP NTAG213`` product string; None for anything else."""
    name = (product or "").removeprefix("NXP ")
    for model in NTAG_SPECS:
        if model == name:
            return model
    return None


def check_capacity(message: bytes, available: int, what: str = "tag") -> None:
    """Refuse a message longer than ``available`` bytes of NDEF capacity."""
    if len(message) > available:
        raise CapacityError(len(message), available, what)
