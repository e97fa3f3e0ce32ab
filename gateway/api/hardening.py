"""What the local API's HTTP server refuses before a handler runs, and what it never logs.

aiohttp 3.14's parser rejects a header line over ``max_field_size`` (default 8190) with
``LineTooLong(value[:100] + b"...")`` (aiohttp/_http_parser.pyx, http_parser.py), and its
``RequestHandler.handle_error`` logs that through ``aiohttp.server`` as "Error handling request"
with the traceback (web_protocol.py): the first 100 bytes of an oversized ``Authorization``
header -- a bearer token -- ended up in the log. Here the limits are lower (nothing the POS,
the kiosk page or a ticket needs comes close) and a filter on aiohttp's loggers turns a
client's malformed request into one line without traceback or content, and scrubs
credentials from anything else those loggers write.
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

HEADER_LIMITS: dict[str, Any] = {
    "max_line_size": 4096,  # the request line: a path with ?ticket= (256 chars) or ?token=
    "max_field_size": 4096,  # one header; a bearer token is 43 characters
    "max_headers": 64,
}
"""RequestHandler arguments (``web.AppRunner(app, **HEADER_LIMITS)``); over them: 400."""

AIOHTTP_LOGGERS = ("aiohttp.server", "aiohttp.web", "aiohttp.access", "aiohttp.websocket")

_SECRETS = re.compile(
    r"(?i)(bearer\s+|(?:authorization|token|ticket|cookie)\s*[=:]\s*)[^\s&'\"\\]+"
)


def scrub(text: str) -> str:
    """The text with bearer tokens, tickets and credential headers replaced."""
    return _SECRETS.sub(r"\1[redacted]", text)


class RequestLogScrubber(logging.Filter):
    """On aiohttp's loggers: a client's bad request is one line; nothing logs a credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else None
            record.msg = "bad HTTP request refused from %s: %s %s"
            record.args = (remote, exc.code, type(exc).__name__)
            record.levelno, record.levelname = logging.INFO, "INFO"
        else:
            text = scrub(record.getMessage())
            if record.exc_info:
                text += "\n" + scrub("".join(traceback.format_exception(*record.exc_info)))
            record.msg, record.args = text, ()
        record.exc_info, record.exc_text = None, None
        return True


def install_log_scrubber() -> None:
    """Idempotent: attach the filter to aiohttp's loggers once per process."""
    for name in AIOHTTP_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RequestLogScrubber) for f in logger.filters):
            logger.addFilter(RequestLogScrubber())
