"""Checksums and the image payload: CRCs, the two 1-bit ink planes, and chunking."""

from __future__ import annotations

import binascii
import zlib


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF)."""
    return binascii.crc_hqx(data, 0xFFFF)


def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def plane_size(width: int, height: int) -> int:
    return (width + 7) // 8 * height


def pack_bwr(indices: bytes, width: int, height: int) -> bytes:
    """Palette indices (0 white, 1 black, 2 red; one byte per pixel) -> black plane + red plane."""
    if len(indices) != width * height:
        raise ValueError(f"expected {width * height} pixels, got {len(indices)}")
    stride = (width + 7) // 8
    black = bytearray(stride * height)
    red = bytearray(stride * height)
    for y in range(height):
        row = indices[y * width : (y + 1) * width]
        base = y * stride
        for x, value in enumerate(row):
            if value == 1:
                black[base + (x >> 3)] |= 0x80 >> (x & 7)
            elif value == 2:
                red[base + (x >> 3)] |= 0x80 >> (x & 7)
    return bytes(black + red)


def unpack_bwr(data: bytes, width: int, height: int) -> bytes:
    """Inverse of :func:`pack_bwr`; where both planes have ink, red wins (as on the panels)."""
    size = plane_size(width, height)
    if len(data) != 2 * size:
        raise ValueError(f"expected {2 * size} bytes for {width}x{height}, got {len(data)}")
    stride = (width + 7) // 8
    out = bytearray(width * height)
    for y in range(height):
        for x in range(width):
            byte_index = y * stride + (x >> 3)
            bit = 0x80 >> (x & 7)
            if data[size + byte_index] & bit:
                out[y * width + x] = 2
            elif data[byte_index] & bit:
                out[y * width + x] = 1
    return bytes(out)


def chunk(payload: bytes, chunk_size: int) -> list[bytes]:
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    return [payload[i : i + chunk_size] for i in range(0, len(payload), chunk_size)] or [b""]
