"""Fitting text into a slot: shrink the font, wrap, and only then cut with "…"."""

from __future__ import annotations

from dataclasses import dataclass

from drivers.label.fonts import FontChain, FontSet
from drivers.label.render.layout import ELLIPSIS, TextSlot
from drivers.label.render.result import PriceDoesNotFit


def line_height(font: FontChain, lines: list[str] | None = None) -> int:
    return max(font.line_height(line) for line in lines) if lines else font.line_height()


def text_width(font: FontChain, text: str) -> float:
    return font.width(text)


def _wrap(font: FontChain, text: str, width: int) -> list[str]:
    """Greedy word wrap; a word wider than the line (or Chinese, which has no spaces) is broken
    between characters."""
    lines: list[str] = []
    current = ""
    for whole_word in text.split():
        word = whole_word
        candidate = f"{current} {word}" if current else word
        if text_width(font, candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
            current = ""
        while text_width(font, word) > width and len(word) > 1:
            cut = _longest_prefix(font, word, width, suffix="")
            cut = max(cut, 1)
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current:
        lines.append(current)
    return lines


def _longest_prefix(font: FontChain, text: str, width: int, suffix: str) -> int:
    """Largest k such that text[:k] (right-stripped) + suffix fits in width; 0 if none."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if text_width(font, text[:mid].rstrip() + suffix) <= width:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(frozen=True)
class Fitted:
    lines: list[str]
    font: FontChain
    size: int
    truncated: bool


def _fits(font: FontChain, lines: list[str], slot: TextSlot) -> bool:
    if len(lines) > slot.max_lines:
        return False
    if len(lines) * line_height(font, lines) > slot.box.h:
        return False
    return all(text_width(font, line) <= slot.box.w for line in lines)


def fit_text(
    text: str, slot: TextSlot, fonts: FontSet, *, field_name: str, may_truncate: bool
) -> Fitted:
    """Shrink until it fits; then (text fields only) cut with "…", else raise."""
    for size in range(slot.max_size, slot.min_size - 1, -1):
        font = fonts.font(size, bold=slot.bold)
        lines = _wrap(font, text, slot.box.w) if slot.max_lines > 1 else [text]
        if _fits(font, lines, slot):
            return Fitted(lines, font, size, truncated=False)
    font = fonts.font(slot.min_size, bold=slot.bold)
    if not may_truncate:
        raise PriceDoesNotFit(field_name, text, slot.min_size, slot.box.w)
    max_lines = max(1, min(slot.max_lines, slot.box.h // max(1, line_height(font, [text]))))
    lines = _wrap(font, text, slot.box.w) if max_lines > 1 else [text]
    kept = lines[: max_lines - 1]
    rest = " ".join(lines[max_lines - 1 :]) if max_lines > 1 else text
    cut = _longest_prefix(font, rest, slot.box.w, ELLIPSIS)
    last = rest[:cut].rstrip() + ELLIPSIS
    if text_width(font, last) > slot.box.w:
        last = ""  # not even "…" fits: the field is reported truncated and left empty
    return Fitted([*kept, last] if last else kept, font, slot.min_size, truncated=True)
