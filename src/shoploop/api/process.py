"""Process-wide settings for a long-running server, applied once by its entry point."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas; returns whether the cap was applied.

    glibc gives busy threads their own arena (up to 8 per core) and rarely returns their
    freed memory, so a threaded server's resident memory creeps up with its thread count
    (the serving benchmark's server peaked at 3.1 GiB for 1.6 GiB of live data). Two arenas
    are plenty for a 2-core box: threads contend briefly on malloc instead. Other C
    libraries (musl, macOS) do not use arenas this way; there it is a no-op.
    """
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = bool(mallopt(_M_ARENA_MAX, int(arenas)))
    if not ok:
        log.debug("mallopt(M_ARENA_MAX) refused")
    return ok
