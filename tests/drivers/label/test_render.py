"""Label rendering: real layouts, checked pixel by pixel (no OCR).

The price check draws the reported price text alone, with the same font and size at the same
origin, onto a blank image and requires the label's black pixels inside the price box to be
exactly those: Pillow draws text on palette images without anti-aliasing, so the comparison is
exact, and it fails if the price is missing, cut, moved or overdrawn.
"""

from __future__ import annotations

import io
from dataclasses import replace
from decimal import Decimal

import pytest
import segno
from PIL import Image, ImageDraw
from pydantic import ValidationError

from drivers.label.content import PriceFormat, ProductContent, UnitPrice, format_money
from drivers.label.fonts import DEJAVU_DIR
from drivers.label.render import (
    Box,
    FieldRender,
    FontSet,
    PriceDoesNotFit,
    RenderResult,
    TextSlot,
    UnrenderableText,
    palette_indices,
    render_label,
    to_jpeg,
)
from drivers.label.render.layout import BLACK, ELLIPSIS, LAYOUTS, PALETTE_RGB, PANELS, RED, WHITE

PANEL_NAMES = ["2.13", "2.9", "4.2"]
EXPECTED_SIZES = {"2.13": (250, 122), "2.9": (296, 128), "4.2": (400, 300)}
URL = "https://shop.example.com/p/4012345678901"


def plain(**kw: object) -> ProductContent:
    data: dict[str, object] = {
        "name": "Bananas",
        "price": Decimal("0.99"),
        "unit_price": UnitPrice(amount=Decimal("1.98"), unit="kg"),
    }
    data.update(kw)
    return ProductContent.model_validate(data)


def full() -> ProductContent:
    return ProductContent(
        name="Organic Whole Milk 3.8% Fat",
        price=Decimal("2.49"),
        promo_price=Decimal("1.99"),
        member_price=Decimal("1.79"),
        unit_price=UnitPrice(amount=Decimal("1.99"), unit="l"),
        url=URL,
        promo_text="2 for 1 until Sunday",
    )


def crop_indices(image: Image.Image, bbox: tuple[int, int, int, int]) -> list[int]:
    region = image.crop(bbox)
    return list(region.tobytes())


def count(image: Image.Image, index: int, bbox: tuple[int, int, int, int] | None = None) -> int:
    region = image if bbox is None else image.crop(bbox)
    return region.tobytes().count(bytes((index,)))


def reference_mask(result: RenderResult, field: FieldRender, fonts: FontSet) -> list[bool]:
    """The field's text drawn alone, same font/size/origin: True where it puts ink."""
    ref = Image.new("P", result.image.size, WHITE)
    ref.putpalette([c for rgb in PALETTE_RGB for c in rgb])
    draw = ImageDraw.Draw(ref)
    draw.text(
        field.origin,
        field.text,
        font=fonts.font(field.size, bold=field.bold).primary,
        fill=1,
        anchor="la",
    )
    return [v != WHITE for v in crop_indices(ref, field.bbox)]


def test_dejavu_fonts_are_installed() -> None:
    # The default font set needs Debian's fonts-dejavu-core for €, £ and accents.
    assert (DEJAVU_DIR / "DejaVuSans.ttf").is_file(), "apt-get install fonts-dejavu-core"
    assert FontSet.default().regular is not None


@pytest.mark.parametrize("panel", PANEL_NAMES)
def test_size_and_only_three_palette_colours(panel: str) -> None:
    result = render_label(full(), panel)
    assert result.image.size == EXPECTED_SIZES[panel] == PANELS[panel].size
    assert result.image.mode == "P"
    assert result.image.getpalette()[:9] == [255, 255, 255, 0, 0, 0, 255, 0, 0]  # type: ignore[index]
    assert palette_indices(result.image) == {WHITE, BLACK, RED}
    rgb_colours = {rgb for _, rgb in result.image.convert("RGB").getcolors(maxcolors=16) or []}
    assert rgb_colours == set(PALETTE_RGB[:3])
    assert result.truncated == () or result.truncated == ("name",)
    assert result.omitted == ()


@pytest.mark.parametrize("panel", PANEL_NAMES)
def test_price_text_is_drawn_exactly_in_its_box(panel: str) -> None:
    fonts = FontSet.default()
    result = render_label(plain(), panel, fonts=fonts)
    price = result.fields["price"]
    assert price.text == "€0.99"
    assert not price.truncated
    assert price.color == BLACK
    box = LAYOUTS[panel].price.box
    left, top, right, bottom = price.bbox
    assert box.x <= left
    assert right <= box.right
    assert box.y <= top
    assert bottom <= box.bottom
    actual = [v == BLACK for v in crop_indices(result.image, price.bbox)]
    expected = reference_mask(result, price, fonts)
    assert sum(expected) > 50
    assert actual == expected
    assert count(result.image, RED) == 0  # no promo, no member price: no red at all


@pytest.mark.parametrize("panel", PANEL_NAMES)
def test_promo_and_member_prices_are_red(panel: str) -> None:
    fonts = FontSet.default()
    result = render_label(full(), panel, fonts=fonts)
    promo = result.fields["promo_price"]
    member = result.fields["member_price"]
    regular = result.fields["price"]
    assert promo.text == "€1.99"
    assert promo.color == RED
    assert member.text.endswith("€1.79")
    assert member.color == RED
    assert regular.text == "€2.49"
    assert regular.color == BLACK
    # The promo price's red pixels are exactly its glyphs.
    actual = [v == RED for v in crop_indices(result.image, promo.bbox)]
    assert actual == reference_mask(result, promo, fonts)
    assert count(result.image, RED, member.bbox) > 20
    # The regular price is struck through: black in its box, but more than the bare glyphs.
    assert count(result.image, BLACK, regular.bbox) > sum(reference_mask(result, regular, fonts))


def test_member_price_alone_is_red_and_price_stays_black() -> None:
    result = render_label(plain(member_price=Decimal("0.89")), "2.9")
    assert result.fields["price"].color == BLACK
    assert count(result.image, RED, result.fields["member_price"].bbox) > 20
    assert "promo_price" not in result.fields


def test_promo_line_in_a_red_band() -> None:
    result = render_label(plain(promo_text="Fresh today"), "4.2")
    band = LAYOUTS["4.2"].promo_band
    assert band is not None
    assert (
        count(result.image, RED, (band.x, band.y, band.right, band.bottom)) > band.w * band.h // 2
    )
    assert result.fields["promo_text"].color == WHITE


def test_long_name_is_shrunk_then_ellipsized_and_reported() -> None:
    name = "Extra Virgin Olive Oil from Hand-Picked Koroneiki Olives of Southern Crete, 750 ml"
    result = render_label(plain(name=name), "2.13")
    field = result.fields["name"]
    assert "name" in result.truncated
    assert field.truncated
    assert field.text.endswith(ELLIPSIS)
    assert field.size == LAYOUTS["2.13"].name.min_size
    box = LAYOUTS["2.13"].name.box
    assert field.bbox[2] <= box.right
    # The price next to it is whole.
    assert result.fields["price"].text == "€0.99"
    assert not result.fields["price"].truncated


def test_a_name_that_fits_when_smaller_is_not_truncated() -> None:
    result = render_label(plain(name="Organic Alpine Whole Milk 1 l"), "2.13")
    field = result.fields["name"]
    assert result.truncated == ()
    assert field.text == "Organic Alpine Whole Milk 1 l"
    assert field.size < LAYOUTS["2.13"].name.max_size


def test_name_wraps_onto_two_lines_on_the_large_panel() -> None:
    result = render_label(plain(name="Organic Whole Milk 3.8% Fat, Alpine Meadows Dairy"), "4.2")
    assert result.truncated == ()
    assert "\n" in result.fields["name"].text
    assert result.fields["name"].text.replace("\n", " ") == (
        "Organic Whole Milk 3.8% Fat, Alpine Meadows Dairy"
    )


def test_long_promo_text_is_reported() -> None:
    result = render_label(plain(promo_text="Buy two, get one free - this week only " * 3), "2.9")
    assert "promo_text" in result.truncated
    assert result.fields["promo_text"].text.endswith(ELLIPSIS)


def test_price_that_cannot_fit_raises_instead_of_being_cut() -> None:
    layout = LAYOUTS["2.13"]
    tiny = replace(layout, price=TextSlot(Box(3, 24, 40, 48), 46, 14, bold=True))
    with pytest.raises(PriceDoesNotFit) as info:
        render_label(plain(price=Decimal("1234567.99")), "2.13", layout=tiny)
    assert info.value.field_name == "price"
    assert "1234567.99" in info.value.text


def test_unit_price_is_money_too() -> None:
    layout = LAYOUTS["2.9"]
    tiny = replace(layout, unit=TextSlot(Box(3, 96, 20, 14), 13, 8))
    with pytest.raises(PriceDoesNotFit) as info:
        render_label(plain(), "2.9", layout=tiny)
    assert info.value.field_name == "unit_price"


def test_member_label_is_dropped_before_the_member_price_is_refused() -> None:
    layout = LAYOUTS["2.9"]
    narrow = replace(layout, secondary=TextSlot(Box(3, 77, 130, 18), 16, 9, bold=True))
    content = plain(promo_price=Decimal("0.89"), member_price=Decimal("0.79"))
    result = render_label(content, "2.9", layout=narrow)
    assert "member_label" in result.truncated
    assert result.fields["member_price"].text == "€0.79"


def test_qr_code_modules_read_back_from_the_image() -> None:
    result = render_label(plain(url=URL), "2.9")
    qr = result.fields["qr"]
    matrix = list(segno.make_qr(URL, error="m", boost_error=False).matrix)
    scale = qr.size
    x0, y0 = qr.origin
    for r, row in enumerate(matrix):
        for c, dark in enumerate(row):
            pixel = result.image.getpixel(
                (x0 + c * scale + scale // 2, y0 + r * scale + scale // 2)
            )
            assert (pixel == BLACK) == bool(dark), (r, c)
    # Quiet zone: a ring of white modules around the code.
    for i in range(-scale, len(matrix) * scale + scale):
        assert result.image.getpixel((x0 - scale, y0 + i)) == WHITE
        assert result.image.getpixel((x0 + i, y0 - scale)) == WHITE


def test_qr_too_dense_for_the_space_is_reported_omitted() -> None:
    long_url = "https://shop.example.com/p/" + "x" * 300
    result = render_label(plain(url=long_url), "2.13")
    assert "qr" in result.omitted
    assert "qr" not in result.fields


def test_black_and_white_panels_get_no_red() -> None:
    result = render_label(full(), "2.9", colors="bw")
    assert RED not in palette_indices(result.image)
    assert result.fields["promo_price"].color == BLACK


def test_decimal_comma_and_suffix_currency() -> None:
    fmt = PriceFormat(decimal_separator=",", currency_position="suffix")
    result = render_label(plain(), "2.9", price_format=fmt)
    assert result.fields["price"].text == "0,99 €"
    assert result.fields["unit_price"].text == "1,98 €/kg"


def test_builtin_font_spells_the_currency_and_refuses_what_it_cannot_draw() -> None:
    result = render_label(plain(name="Kase"), "2.9", fonts=FontSet.pillow_builtin())
    assert result.substitutions == {"€": "EUR"}
    assert result.fields["price"].text == "0.99 EUR"
    with pytest.raises(UnrenderableText, match="name: ä") as caught:
        render_label(plain(name="Käse"), "2.9", fonts=FontSet.pillow_builtin())
    assert caught.value.missing == {"name": ["ä"]}


def test_jpeg_for_the_access_point_maps_back_to_the_palette() -> None:
    """The AP maps each JPEG pixel to the nearest panel colour (dither=0): that must give back
    the rendered image almost everywhere (JPEG ringing touches a few edge pixels at most)."""
    result = render_label(full(), "2.9")
    decoded = Image.open(io.BytesIO(to_jpeg(result.image))).convert("RGB")
    assert decoded.size == result.image.size
    original = result.image.tobytes()
    rgb = decoded.tobytes()
    wrong = 0
    for i, index in enumerate(original):
        r, g, b = rgb[3 * i : 3 * i + 3]
        nearest = min(
            range(3),
            key=lambda k: sum((a - p) ** 2 for a, p in zip((r, g, b), PALETTE_RGB[k], strict=True)),
        )
        wrong += nearest != index
    assert wrong / len(original) < 0.002


# --- content model --------------------------------------------------------------------------


def test_content_is_frozen_and_strict() -> None:
    content = plain()
    with pytest.raises(ValidationError):
        content.name = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        ProductContent.model_validate({"name": "x", "price": "1.00", "colour": "red"})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "price": "-1.00"}, "greater than or equal to 0"),
        ({"name": "x", "price": "1.999"}, "decimal places"),
        ({"name": "x", "price": "NaN"}, "finite"),
        ({"name": "x", "price": "1.00", "promo_price": "1.00"}, "promo_price must be lower"),
        ({"name": "x", "price": "1.00", "member_price": "2.00"}, "member_price must be lower"),
        ({"name": "x", "price": "1.00", "currency": "eur"}, "pattern"),
        ({"name": "x", "price": "1.50", "currency": "JPY"}, "no decimals"),
        ({"name": "x", "price": "1.00", "url": "ftp://x"}, "http"),
        ({"name": "", "price": "1.00"}, "at least 1"),
        ({"name": "x", "price": "1.00", "unit_price": {"amount": "1", "unit": "/kg"}}, "pattern"),
    ],
)
def test_content_validation(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ProductContent.model_validate(data)


def test_money_is_formatted_exactly() -> None:
    assert format_money(Decimal("2.5"), "EUR") == "€2.50"
    assert format_money(Decimal("1234.00"), "CHF") == "1234.00 CHF"
    assert format_money(Decimal("100"), "JPY") == "¥100"
    assert format_money(Decimal("2.49"), "GBP", PriceFormat(decimal_separator=",")) == "£2,49"
