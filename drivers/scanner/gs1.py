"""GS1 in a scanned code, parsed and validated with biip.

The ``gs1`` dict of a scan (stable, JSON-safe; present only when the code parsed *and*
validated as GS1 with biip, check digits and dates included)::

    {
      "gtin": "09506000134352" | null,   # GTIN-14 from AI 01, or the plain GTIN widened to 14
      "hri": "(01)09506000134352(17)251231(10)ABC123" | null,   # null for a plain GTIN
      "elements": [                       # [] for a plain GTIN (it is not an element string)
        {"ai": "01", "value": "09506000134352", "description": "Global Trade Item Number (GTIN)"},
        {"ai": "17", "value": "251231", "description": "Expiration date (YYMMDD)",
         "date": "2025-12-31"},           # "date" only for date AIs
        ...
      ]
    }

When is a code treated as GS1 (see :func:`gs1_info`):

* AIM ``]C1 ]e0 ]e1 ]e2 ]d2 ]Q3 ]J1`` (GS1 symbologies): a GS1 message, raw with FNC1 as GS
  (0x1D), or HRI "(01)...", or a GS1 Digital Link URI in DataMatrix/QR.
* AIM ``]E0 ]E3 ]E4 ]I1``: a plain GTIN.
* Any other AIM identifier: the scanner says it is not GS1; only a GS1 Digital Link URI
  (usually in a plain ``]Q1`` QR code) is recognised.
* No AIM identifier: HRI "(01)..." text, a GS1 Digital Link URI, raw AIs containing FNC1 (GS),
  a plain GTIN-8/12/13/14 with a valid check digit, or raw AIs that start with AI 01 and a valid
  GTIN and parse completely (GS1-128 read without an AIM prefix).

A Digital Link URI may use any domain (GS1 allows that); it counts when its path carries a
valid primary key such as ``/01/<GTIN>``. A code that does not parse as GS1 is still a good scan
with ``gs1`` = None, never an error.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from pydantic import JsonValue

log = logging.getLogger(__name__)

GS1_MESSAGE_AIMS = frozenset({"]C1", "]e0", "]e1", "]e2", "]d2", "]d5", "]Q3", "]Q4", "]J1"})
GTIN_AIMS = frozenset({"]E0", "]E3", "]E4", "]I1"})
_DIGITAL_LINK_AIMS = frozenset({"]d2", "]d5", "]Q3", "]Q4"})

_DIGITS_RE = re.compile(r"\d+")
_RAW_GTIN_AI_RE = re.compile(r"01\d{14}")


def warm_up() -> None:
    """Import biip now (~0.5 s): callers run this in a thread so the first scan is not slow."""
    import biip.gs1_digital_link_uris
    import biip.gs1_messages
    import biip.gtin  # noqa: F401


def gs1_info(code: str, aim_id: str | None = None) -> dict[str, JsonValue] | None:
    """The documented ``gs1`` dict for ``code``, or None when it is not (valid) GS1.

    Never raises: biip's failures (and any bug of ours around them) mean "not GS1".
    """
    try:
        return _gs1_info(code, aim_id)
    except Exception as exc:
        log.debug("not GS1", extra={"aim_id": aim_id, "error": f"{type(exc).__name__}: {exc}"})
        return None


def _gs1_info(code: str, aim_id: str | None) -> dict[str, JsonValue] | None:
    if aim_id in GS1_MESSAGE_AIMS:
        return _message(code.lstrip("\x1d"), digital_link=aim_id in _DIGITAL_LINK_AIMS)
    if aim_id in GTIN_AIMS:
        return _plain_gtin(code)
    if _is_url(code):
        return _digital_link(code)
    if aim_id is not None:
        return None  # the scanner says which symbology it read, and it is not a GS1 one
    if code.startswith("(") or "\x1d" in code or _RAW_GTIN_AI_RE.match(code):
        return _message(code.lstrip("\x1d"), digital_link=False)
    return _plain_gtin(code)


def _is_url(code: str) -> bool:
    return code.startswith(("http://", "https://", "HTTP://", "HTTPS://"))


def _plain_gtin(code: str) -> dict[str, JsonValue] | None:
    from biip.gtin import Gtin

    if not (_DIGITS_RE.fullmatch(code) and len(code) in (8, 12, 13, 14)):
        return None
    gtin = Gtin.parse(code)
    return {"gtin": str(gtin.as_gtin_14()), "hri": None, "elements": []}


def _message(code: str, *, digital_link: bool) -> dict[str, JsonValue] | None:
    from biip.gs1_messages import GS1Message

    if digital_link and _is_url(code):
        return _digital_link(code)
    message = GS1Message.parse_hri(code) if code.startswith("(") else GS1Message.parse(code)
    return _from_element_strings(message.element_strings)


def _digital_link(code: str) -> dict[str, JsonValue] | None:
    from biip.gs1_digital_link_uris import GS1DigitalLinkURI

    return _from_element_strings(GS1DigitalLinkURI.parse(code).element_strings)


def _from_element_strings(element_strings: Any) -> dict[str, JsonValue] | None:
    """biip element strings -> the documented dict; None if any check digit failed."""
    elements: list[JsonValue] = []
    gtin: str | None = None
    for es in element_strings:
        if es.gtin_error or es.sscc_error or es.gln_error:
            return None
        element: dict[str, JsonValue] = {
            "ai": str(es.ai.ai),
            "value": str(es.value),
            "description": str(es.ai.description),
        }
        if es.date is not None:
            element["date"] = es.date.isoformat()
        elements.append(element)
        if gtin is None and es.ai.ai == "01":
            gtin = str(es.value)
    if not elements:
        return None
    hri = "".join(f"({e['ai']}){e['value']}" for e in elements if isinstance(e, dict))
    return {"gtin": gtin, "hri": hri, "elements": elements}
