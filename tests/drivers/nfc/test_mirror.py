"""Byte scripts for the NTAG21x UID/counter mirror (codec and the emulated chip) and for NTAG 424
DNA SUN messages against NXP AN12196's published example."""

from __future__ import annotations

import pytest

from drivers.nfc.codec import (
    NTAG_SPECS,
    MirrorConf,
    StickerKey,
    StickerSignatureError,
    build_sticker_url,
    decode_mirror,
    decode_uri,
    encode_ndef_message,
    find_ndef_tlv,
    ndef_tlv,
    placeholder_mirror,
    uri_record,
    verify_sticker_url,
)
from drivers.nfc.codec.mirror import Mirror, mirror_problem, mirror_text, parse_mirror_text
from drivers.nfc.codec.sun import decrypt_picc_data, sdm_mac, sun_message, verify_sun
from simulators.nfc import EmulatedNtag
from simulators.nfc.frames import ACK, NAK

UID = bytes.fromhex("04E141124C2880")  # the datasheet's example UID
CFG = NTAG_SPECS["NTAG213"].cfg_page  # 29h


def test_mirror_text_is_the_datasheets_example() -> None:
    # NTAG21x datasheet: UID 04-E1-41-12-4C-28-80h and counter 00-3F-31h
    assert mirror_text(UID, 0x3F31) == b"04E141124C2880x003F31"
    assert mirror_text(UID, 0x3F31, MirrorConf.UID) == b"04E141124C2880"
    assert mirror_text(UID, 0x3F31, MirrorConf.COUNTER) == b"003F31"
    assert parse_mirror_text("04E141124C2880x003F31") == (UID, 0x3F31)
    with pytest.raises(ValueError, match="24 bits"):
        mirror_text(UID, 1 << 24)


def test_mirror_byte_layout() -> None:
    # MIRROR_CONF 11b (UID and counter), MIRROR_BYTE 01b, STRG_MOD_EN: D4h; MIRROR_PAGE 0Ch
    m = decode_mirror(bytes([0xD4, 0x00, 0x0C, 0xFF]))
    assert (m.conf, m.byte, m.page, m.strg_mod_en) == (MirrorConf.BOTH, 1, 0x0C, True)
    assert m.mirror_byte() == 0xD4
    assert m.start == 0x0C * 4 + 1
    assert not decode_mirror(bytes([0x04, 0, 0, 0xFF])).active  # factory CFG0


@pytest.mark.parametrize(
    ("model", "page", "byte", "conf", "ok"),
    [
        ("NTAG213", 0x22, 3, MirrorConf.BOTH, True),  # 21 bytes end exactly at page 27h
        ("NTAG213", 0x23, 0, MirrorConf.BOTH, False),
        ("NTAG213", 0x24, 2, MirrorConf.UID, True),
        ("NTAG213", 0x24, 3, MirrorConf.UID, False),
        ("NTAG213", 0x26, 2, MirrorConf.COUNTER, True),
        ("NTAG213", 0x26, 3, MirrorConf.COUNTER, False),
        ("NTAG213", 0x03, 0, MirrorConf.UID, False),  # below the user memory
        ("NTAG215", 0x7C, 3, MirrorConf.BOTH, True),  # last user page 81h
        ("NTAG215", 0x7D, 0, MirrorConf.BOTH, False),
        ("NTAG216", 0xDC, 3, MirrorConf.BOTH, True),  # last user page E1h
        ("NTAG216", 0xDD, 0, MirrorConf.BOTH, False),
    ],
)
def test_mirror_must_lie_in_user_memory(
    model: str, page: int, byte: int, conf: MirrorConf, ok: bool
) -> None:
    spec = NTAG_SPECS[model]  # type: ignore[index]
    assert (mirror_problem(Mirror(conf=conf, page=page, byte=byte), spec) is None) is ok


def _tag() -> EmulatedNtag:
    tag = EmulatedNtag(UID, "NTAG213")
    tag.memory[0x0C * 4 : 0x0C * 4 + 24] = b"m=00000000000000x000000."  # pages 0Ch-11h
    return tag


def test_the_emulated_chip_mirrors_and_counts_like_the_datasheet() -> None:
    tag = _tag()
    tag.activate()
    assert tag.process(bytes([0xA2, CFG, 0xE4, 0x00, 0x0C, 0xFF])) == ACK  # 0Ch, byte 2
    assert tag.process(bytes([0xA2, CFG + 1, 0x10, 0x05, 0x00, 0x00])) == ACK  # NFC_CNT_EN
    # the mirror is in force from the next activation (the writer selects the tag again); the
    # counter counts this activation's first READ, as NFC_CNT_EN is set by then
    assert tag.process(bytes([0x30, 0x0C]))[1:3] == b"=0"
    assert tag.counter == 1
    tag.activate()
    assert tag.process(bytes([0x39, 0x02])) == b"\x01\x00\x00"  # READ_CNT: LSB first, no count
    data = tag.process(bytes([0x30, 0x0C]))  # the first READ counts, then is answered
    assert data == b"m=" + b"04E141124C2880x000002"[:14]
    assert tag.process(bytes([0x30, 0x10]))[:7] == b"x000002"  # the rest, from page 10h
    fast = tag.process(bytes([0x3A, 0x0C, 0x11]))  # same activation: no second count
    assert fast[2:23] == b"04E141124C2880x000002"
    assert tag.process(bytes([0x39, 0x02])) == b"\x02\x00\x00"
    tag.activate()
    assert tag.process(bytes([0x3A, 0x0C, 0x11]))[2:23] == b"04E141124C2880x000003"
    # the memory itself still holds the placeholder
    assert bytes(tag.memory[0x0C * 4 + 2 : 0x0C * 4 + 23]) == b"00000000000000x000000"


def test_the_counter_counts_only_when_enabled_and_stops_at_24_bits() -> None:
    tag = _tag()
    tag.activate()
    tag.process(bytes([0x30, 0x04]))
    assert tag.counter == 0
    tag.memory[(CFG + 1) * 4] |= 0x10
    tag.counter = 0xFFFFFF
    tag.activate()
    tag.process(bytes([0x30, 0x04]))
    assert tag.counter == 0xFFFFFF
    assert tag.process(bytes([0x39, 0x00])) == NAK  # READ_CNT's address is 02h


def test_the_emulated_chip_refuses_a_mirror_outside_user_memory() -> None:
    tag = _tag()
    tag.activate()
    before = tag.page(CFG)
    assert tag.process(bytes([0xA2, CFG, 0xC4, 0x00, 0x23, 0xFF])) == NAK  # both, page 23h
    assert tag.process(bytes([0xA2, CFG, 0x44, 0x00, 0x02, 0xFF])) == NAK  # UID, page 02h
    assert tag.page(CFG) == before
    assert tag.process(bytes([0xA2, CFG, 0xF4, 0x00, 0x22, 0xFF])) == ACK  # both, 22h byte 3


# --- NTAG 424 DNA SUN (AN12196) ---------------------------------------------------------------

ZERO = bytes(16)
AN12196_E = "EF963FF7828658A599F3041510671E88"
AN12196_C = "94EED9EE65337086"


def test_an12196_encrypted_picc_data_example() -> None:
    picc = decrypt_picc_data(ZERO, bytes.fromhex(AN12196_E))
    assert picc.tag == 0xC7
    assert picc.uid == bytes.fromhex("04DE5F1EACC040")
    assert picc.counter == 61  # SDMReadCtr 3D0000h, least significant byte first
    assert sdm_mac(ZERO, picc.uid, picc.counter).hex().upper() == AN12196_C
    assert verify_sun(ZERO, lambda uid: ZERO, AN12196_E, AN12196_C) == picc
    # and our encoder gives the very same message for the same padding
    assert sun_message(ZERO, ZERO, picc.uid, 61, padding=bytes.fromhex("DA5CF60941")) == (
        AN12196_E,
        AN12196_C,
    )


@pytest.mark.parametrize(
    ("e", "c", "meta"),
    [
        (AN12196_E, "94EED9EE65337087", ZERO),  # one bit of the MAC
        ("EF963FF7828658A599F3041510671E89", AN12196_C, ZERO),  # one bit of PICCData
        (AN12196_E, AN12196_C, b"\x01" * 16),  # another meta read key
        (AN12196_E, AN12196_C[:-2], ZERO),
        ("zz", AN12196_C, ZERO),
    ],
)
def test_altered_sun_messages_are_refused(e: str, c: str, meta: bytes) -> None:
    with pytest.raises(StickerSignatureError):
        verify_sun(meta, lambda uid: ZERO, e, c)


def test_sun_mac_binds_the_counter_and_the_file_key() -> None:
    uid = bytes.fromhex("04DE5F1EACC040")
    e, c = sun_message(ZERO, b"\x22" * 16, uid, 62)
    assert verify_sun(ZERO, lambda u: b"\x22" * 16, e, c).counter == 62
    with pytest.raises(StickerSignatureError, match="SDMMAC"):
        verify_sun(ZERO, lambda u: ZERO, e, c)
    e_other, _ = sun_message(ZERO, b"\x22" * 16, uid, 63)
    with pytest.raises(StickerSignatureError, match="SDMMAC"):
        verify_sun(ZERO, lambda u: b"\x22" * 16, e_other, c)  # a counter moved, the MAC did not


def test_where_a_sticker_urls_placeholder_lands_on_an_ntag213() -> None:
    key = StickerKey(bytes(range(32)), "k1")
    uid = bytes.fromhex("04a1b2c3d4e5f6")
    url = build_sticker_url("t.example.com", "S1", "P1", uid, key)
    message = encode_ndef_message([uri_record(url)])
    # MB|ME|SR well-known "U", 70 payload bytes, prefix 04h (https://), then the URL's rest
    assert message[:5] == bytes.fromhex("d101465504")
    assert message.endswith(b"&m=00000000000000x000000")
    # NTAG213's data area: the factory lock control TLV (5 bytes), then 03h 4Ah and the message
    area = bytes.fromhex("0103a00c34") + ndef_tlv(message)
    mirror = placeholder_mirror(area, message)
    # 16 (pages 0-3) + 7 (TLVs' headers) + 53 (into the message) = byte 76: page 13h, byte 0
    assert (mirror.page, mirror.byte, mirror.conf) == (0x13, 0, MirrorConf.BOTH)
    assert mirror.mirror_byte() == 0xC4
    tag = EmulatedNtag(uid, "NTAG213")
    tag.memory[16 : 16 + len(area)] = area
    tag.memory[(CFG + 1) * 4] |= 0x10
    assert tag.process(bytes([0xA2, CFG, 0xC4, 0x00, 0x13, 0xFF])) == ACK
    tag.activate()
    data = tag.process(bytes([0x3A, 0x04, 0x27]))
    read = find_ndef_tlv(data)
    assert read is not None
    text = "https://" + read[5:].decode()
    assert text.endswith("&m=04A1B2C3D4E5F6x000001")
    assert decode_uri(read[4:]) == text
    assert verify_sticker_url(text, uid, key).counter == 1
