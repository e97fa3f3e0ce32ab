"""Which readers pcscd lists now, for doctor and devices scan.

Each call opens and releases its own PC/SC context: pyscard's shared context
(``smartcard.System.readers``) stays bound to the pcscd that was running when it was first
used, and after pcscd restarts it answers "no service" for the rest of the process.
"""

from __future__ import annotations

from core.errors import StoregwError
from drivers.smartcard.transport.codes import (
    E_NO_READERS_AVAILABLE,
    SERVICE_LOST,
    code_name,
    normalize_code,
)


class PcscdAbsent(StoregwError):
    """pcscd does not answer; ``code`` is the PC/SC code's name, ``status`` its number."""

    def __init__(self, status: int) -> None:
        super().__init__(code_name(status), f"pcscd does not answer ({code_name(status)})")
        self.status = normalize_code(status)

    @property
    def service_lost(self) -> bool:
        """No pcscd at all (rather than one that refuses this call)."""
        return self.status in SERVICE_LOST


def list_readers() -> list[str]:
    """Reader names; raises :class:`PcscdAbsent` when pcscd cannot be reached."""
    from smartcard import scard

    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if normalize_code(hresult) != 0:
        raise PcscdAbsent(hresult)
    try:
        hresult, names = scard.SCardListReaders(context, [])
        code = normalize_code(hresult)
        if code == E_NO_READERS_AVAILABLE:
            return []
        if code != 0:
            raise PcscdAbsent(hresult)
        return [str(n) for n in names]
    finally:
        scard.SCardReleaseContext(context)
