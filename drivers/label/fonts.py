"""Fonts for labels: a Latin font first, then CJK fonts, chosen glyph by glyph.

Pillow draws a string with one font and shows characters that font lacks as boxes, silently.
A :class:`FontChain` splits text into runs, each drawn with the first font that has its glyphs:
DejaVu Sans (Debian ``fonts-dejavu-core``) for Latin, Greek, Cyrillic and currency signs, then
WenQuanYi Micro Hei (``fonts-wqy-microhei``) or Noto Sans CJK (``fonts-noto-cjk``) for Chinese.
Characters no font has are reported (:meth:`FontSet.missing_glyphs`), so the renderer can refuse
them as ``unrenderable_text`` rather than draw boxes.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

from PIL import ImageDraw, ImageFont

log = logging.getLogger(__name__)

AnyFont = ImageFont.FreeTypeFont | ImageFont.ImageFont
DEJAVU_DIR = Path("/usr/share/fonts/truetype/dejavu")
CJK_CANDIDATES: tuple[tuple[Path, Path], ...] = (
    (  # fonts-noto-cjk: has a real bold
        Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
        Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"),
    ),
    (  # fonts-wqy-microhei: one weight
        Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
        Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    ),
)


@functools.lru_cache(maxsize=512)
def _truetype(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


@functools.lru_cache(maxsize=128)
def _pillow_default(size: int) -> AnyFont:
    return ImageFont.load_default(size=size)


def _mask_signature(font: AnyFont, ch: str) -> tuple[tuple[int, int], bytes]:
    mask = font.getmask(ch, mode="1")
    return (mask.size, bytes(mask))


@functools.lru_cache(maxsize=16384)
def has_glyph(font: AnyFont, ch: str) -> bool:
    """Pillow has no "has glyph" API; a missing glyph renders exactly like a non-character."""
    if ch.isspace():
        return True
    return _mask_signature(font, ch) != _mask_signature(font, "\uffff")


def _ascent_descent(font: AnyFont) -> tuple[int, int]:
    if isinstance(font, ImageFont.FreeTypeFont):
        ascent, descent = font.getmetrics()
        return int(ascent), int(descent)
    return int(font.getbbox("Ag")[3]), 0


@dataclass(frozen=True)
class FontChain:
    """One size of a font set: the primary font and its fallbacks, in order."""

    fonts: tuple[AnyFont, ...]

    @property
    def primary(self) -> AnyFont:
        return self.fonts[0]

    def _pick(self, ch: str) -> int:
        for i, font in enumerate(self.fonts):
            if has_glyph(font, ch):
                return i
        return 0  # drawn as the primary font's box; reported by missing_glyphs

    def runs(self, text: str) -> list[tuple[AnyFont, str]]:
        """Consecutive characters drawn with the same font (spaces join the current run)."""
        out: list[tuple[int, str]] = []
        for ch in text:
            index = out[-1][0] if ch.isspace() and out else self._pick(ch)
            if out and out[-1][0] == index:
                out[-1] = (index, out[-1][1] + ch)
            else:
                out.append((index, ch))
        return [(self.fonts[i], run) for i, run in out]

    def used(self, text: str) -> list[AnyFont]:
        return list(dict.fromkeys(font for font, _ in self.runs(text))) or [self.primary]

    def ascent(self, text: str) -> int:
        return max(_ascent_descent(font)[0] for font in self.used(text))

    def line_height(self, text: str = "") -> int:
        fonts = self.used(text)
        return max(a for a, _ in map(_ascent_descent, fonts)) + max(
            d for _, d in map(_ascent_descent, fonts)
        )

    def width(self, text: str) -> float:
        """Advance width, or the ink's right edge when a glyph overhangs it."""
        if not text:
            return 0.0
        x = 0.0
        right = 0.0
        left = 0.0
        for i, (font, run) in enumerate(self.runs(text)):
            lb, _, rb, _ = font.getbbox(run, anchor="ls")
            if i == 0:
                left = min(0.0, float(lb))
            right = max(right, x + float(rb))
            x += float(font.getlength(run))
        return max(x, right) - left

    def left_bearing(self, text: str) -> int:
        if not text:
            return 0
        font, run = self.runs(text)[0]
        return int(font.getbbox(run, anchor="ls")[0])

    def draw(
        self, draw: ImageDraw.ImageDraw, pos: tuple[int, int], text: str, fill: int
    ) -> tuple[int, int, int, int]:
        """Draw with the top of the line at ``pos``; the ink's bounding box."""
        runs = self.runs(text)
        if len(runs) == 1 and runs[0][0] is self.primary:  # as Pillow would, to the pixel
            draw.text(pos, text, font=self.primary, fill=fill, anchor="la")
            box = draw.textbbox(pos, text, font=self.primary, anchor="la")
            return (int(box[0]), int(box[1]), int(box[2]), int(box[3]))
        baseline = pos[1] + self.ascent(text)
        x = float(pos[0])
        boxes: list[tuple[float, float, float, float]] = []
        for font, run in runs:
            draw.text((x, baseline), run, font=font, fill=fill, anchor="ls")
            if run.strip():
                boxes.append(draw.textbbox((x, baseline), run, font=font, anchor="ls"))
            x += float(font.getlength(run))
        if not boxes:
            return (pos[0], pos[1], pos[0], pos[1])
        return (
            int(min(b[0] for b in boxes)),
            int(min(b[1] for b in boxes)),
            int(max(b[2] for b in boxes)),
            int(max(b[3] for b in boxes)),
        )


@dataclass(frozen=True)
class FontSet:
    """Regular and bold TrueType files plus fallbacks; ``None`` means Pillow's built-in font."""

    regular: Path | None = None
    bold: Path | None = None
    fallback_regular: tuple[Path, ...] = ()
    fallback_bold: tuple[Path, ...] = ()

    @classmethod
    def default(cls) -> FontSet:
        """DejaVu Sans with the installed CJK fonts; Pillow's built-in font when no DejaVu."""
        regular = DEJAVU_DIR / "DejaVuSans.ttf"
        bold = DEJAVU_DIR / "DejaVuSans-Bold.ttf"
        cjk = [pair for pair in CJK_CANDIDATES if pair[0].is_file() and pair[1].is_file()]
        if not cjk:
            log.warning(
                "no CJK font installed; Chinese text will be refused as unrenderable",
                extra={"candidates": [str(p[0]) for p in CJK_CANDIDATES]},
            )
        fallback_regular = tuple(r for r, _ in cjk)
        fallback_bold = tuple(b for _, b in cjk)
        if regular.is_file() and bold.is_file():
            return cls(regular, bold, fallback_regular, fallback_bold)
        log.warning(
            "DejaVu fonts not found; using Pillow's built-in font, which has no € or accents",
            extra={"font_dir": str(DEJAVU_DIR)},
        )
        return cls(None, None, fallback_regular, fallback_bold)

    @classmethod
    def pillow_builtin(cls) -> FontSet:
        return cls(None, None)

    def font(self, size: int, *, bold: bool = False) -> FontChain:
        path = self.bold if bold else self.regular
        first = _pillow_default(size) if path is None else _truetype(str(path), size)
        rest = self.fallback_bold if bold else self.fallback_regular
        return FontChain((first, *(_truetype(str(p), size) for p in rest)))

    def missing_glyphs(self, text: str, *, bold: bool = False) -> list[str]:
        """Characters of ``text`` that no font of the set has (they would be boxes)."""
        chain = self.font(24, bold=bold)
        return [
            ch
            for ch in dict.fromkeys(text)
            if not ch.isspace() and not any(has_glyph(f, ch) for f in chain.fonts)
        ]


@functools.lru_cache(maxsize=1)
def font_default() -> FontSet:
    """The process-wide default font set, looked up once."""
    return FontSet.default()


__all__ = ["AnyFont", "FontChain", "FontSet", "font_default", "has_glyph"]
