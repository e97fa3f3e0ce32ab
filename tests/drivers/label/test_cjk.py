"""Labels in the store's language: Chinese names drawn with a CJK font (never boxes), text no
installed font has refused as ``unrenderable_text``, and money written as shoppers read it.

The glyph checks are exact: Pillow draws palette images without anti-aliasing, so a character
drawn alone with the CJK font at the field's size and position must give exactly the label's
ink there; drawn as a placeholder box it would not.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from core.events import Action
from drivers.base import ActionFailed
from drivers.label.config import LabelConfig
from drivers.label.content import PriceFormat, ProductContent, UnitPrice, format_money
from drivers.label.driver import LabelDriver
from drivers.label.fonts import DEJAVU_DIR, FontSet, font_default, has_glyph
from drivers.label.render import (
    BLACK,
    LAYOUTS,
    PALETTE_RGB,
    WHITE,
    UnrenderableText,
    render_label,
)
from simulators.oepl import OeplSimulator

MILK_CN = "有机全脂牛奶"
COFFEE_CN = "进口咖啡豆"
LONG_CN = "进口新西兰草饲全脂高钙纯牛奶家庭装超值大礼包限量供应"


def product(name: str, **kw: object) -> ProductContent:
    data: dict[str, object] = {"name": name, "price": "12.90", "currency": "CNY"}
    data.update(kw)
    return ProductContent.model_validate(data)


def ink(image: Image.Image, box: tuple[int, int, int, int]) -> bytes:
    return bytes(v != WHITE for v in image.crop(box).tobytes())


def test_a_cjk_font_is_installed_and_used_as_fallback() -> None:
    fonts = font_default()
    assert fonts.fallback_regular, "apt-get install fonts-wqy-microhei (scripts/system-deps.sh)"
    chain = fonts.font(22, bold=True)
    assert not has_glyph(chain.primary, "牛")  # DejaVu has no Chinese ...
    assert [f for f, _ in chain.runs("牛奶")] == [chain.fonts[1]]  # ... the CJK font draws it
    assert [run for _, run in chain.runs("Bio 牛奶 1 l")] == ["Bio ", "牛奶 ", "1 l"]


def test_chinese_names_are_drawn_with_real_glyphs_not_boxes(tmp_path: Path) -> None:
    fonts = font_default()
    results = {}
    for name in (MILK_CN, COFFEE_CN):
        result = render_label(product(name), "2.9")
        field = result.fields["name"]
        assert field.text == name
        assert not field.truncated
        # Exactly the CJK font's glyphs, drawn alone at the same size and place.
        chain = fonts.font(field.size, bold=True)
        ref = Image.new("P", result.image.size, WHITE)
        ref.putpalette([c for rgb in PALETTE_RGB for c in rgb])
        chain.draw(ImageDraw.Draw(ref), field.origin, name, BLACK)
        assert ink(result.image, field.bbox) == ink(ref, field.bbox)
        boxes = Image.new("P", result.image.size, WHITE)
        ImageDraw.Draw(boxes).text(
            field.origin, name, font=chain.primary, fill=BLACK, anchor="la"
        )  # what the old renderer drew: DejaVu's placeholder boxes
        assert ink(result.image, field.bbox) != ink(boxes, field.bbox)
        results[name] = result
        result.image.save(tmp_path / f"cjk-{len(results)}.png")
    a = ink(results[MILK_CN].image, (0, 0, 296, 26))
    b = ink(results[COFFEE_CN].image, (0, 0, 296, 26))
    assert a != b


@pytest.mark.parametrize("panel", ["2.9", "4.2"])
def test_a_long_chinese_name_wraps_or_shrinks_inside_its_box(panel: str, tmp_path: Path) -> None:
    result = render_label(product(LONG_CN, promo_text="会员特价 买二送一"), panel)
    field = result.fields["name"]
    slot = LAYOUTS[panel].name
    left, top, right, bottom = field.bbox
    box = slot.box
    assert box.x <= left
    assert box.y <= top
    assert right <= box.right
    assert bottom <= box.bottom
    if slot.max_lines > 1:
        assert field.text.count("\n") == 1  # wrapped between characters: Chinese has no spaces
        assert field.text.replace("\n", "") == LONG_CN
    else:
        assert field.size < slot.max_size  # shrunk to fit before anything is cut
    assert "name" not in result.truncated or field.text.endswith("…")
    result.image.save(tmp_path / f"cjk-long-{panel}.png")


def test_text_no_font_can_draw_is_refused_not_drawn_as_boxes() -> None:
    with pytest.raises(UnrenderableText) as info:
        render_label(product("牛奶 \U00010000"), "2.9")
    assert info.value.missing == {"name": ["\U00010000"]}
    latin_only = FontSet(DEJAVU_DIR / "DejaVuSans.ttf", DEJAVU_DIR / "DejaVuSans-Bold.ttf")
    with pytest.raises(UnrenderableText, match="name: 有 机 全 脂 牛 奶"):
        render_label(product(MILK_CN), "2.9", fonts=latin_only)
    with pytest.raises(UnrenderableText, match="promo_text"):
        render_label(product("Milk", promo_text="限时 \U00010000"), "2.9")


async def test_label_show_refuses_unrenderable_text_and_queues_nothing(tmp_path: Path) -> None:
    async with OeplSimulator() as ap:
        ap.add_tag("0000021EDE3AB43C", hw_type=0x01)
        cfg = LabelConfig.model_validate(
            {"id": "esl", "backend": "oepl", "url": ap.url, "labels": [{"id": "0000021EDE3AB43C"}]}
        )
        async with LabelDriver(cfg, data_dir=tmp_path) as driver:
            args = {
                "label": "0000021EDE3AB43C",
                "product": {"name": "牛奶 \U00010000", "price": "1"},
            }
            with pytest.raises(ActionFailed) as info:
                await driver.perform(Action(name="label.show", args=args))
            assert info.value.reason == "unrenderable_text"
            assert await driver.queue.count() == 0


@pytest.mark.parametrize(
    ("amount", "currency", "fmt", "expected"),
    [
        ("12.90", "CNY", PriceFormat(), "¥12.90"),
        ("12.90", "CNY", PriceFormat(locale="zh_CN"), "¥12.90"),
        ("12.90", "EUR", PriceFormat(locale="de_DE"), "12,90\xa0€"),
        ("12.90", "EUR", PriceFormat(locale="fr_FR"), "12,90\xa0€"),
        ("12.90", "GBP", PriceFormat(locale="en_GB"), "£12.90"),
        ("12.90", "EUR", PriceFormat(locale="en_IE"), "€12.90"),
        ("1234.50", "EUR", PriceFormat(locale="de_DE"), "1.234,50\xa0€"),
    ],
)
def test_money_as_shoppers_read_it(
    amount: str, currency: str, fmt: PriceFormat, expected: str
) -> None:
    assert format_money(Decimal(amount), currency, fmt) == expected


def test_a_chinese_label_with_a_store_locale(tmp_path: Path) -> None:
    content = product(
        MILK_CN,
        promo_price="9.90",
        member_price="8.80",
        member_label="会员价",
        unit_price=UnitPrice(amount=Decimal("12.90"), unit="升"),
    )
    result = render_label(content, "2.9", price_format=PriceFormat(locale="zh_CN"))
    assert result.fields["promo_price"].text == "¥9.90"
    assert result.fields["price"].text == "¥12.90"
    assert result.fields["member_price"].text.startswith("会员价")
    assert result.fields["unit_price"].text == "¥12.90/升"
    assert result.substitutions == {}
    result.image.save(tmp_path / "cjk-locale.png")
