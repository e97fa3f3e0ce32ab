"""The rule for the names people give things: stores, gateways, devices, tills, kiosks, stickers.

One rule so that a name accepted in the config is accepted in a topic, a certificate's common
name, a file name and a URL path without escaping: ASCII letters, digits, ``_`` and ``-``, 1-64.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import Field

ID_PATTERN: Final = r"^[A-Za-z0-9_-]{1,64}$"
ID_RE: Final = re.compile(ID_PATTERN)

Identifier = Annotated[str, Field(pattern=ID_PATTERN)]
"""A pydantic field type for any such name."""


def is_identifier(text: str) -> bool:
    return ID_RE.fullmatch(text) is not None
