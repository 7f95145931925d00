"""Giving freed heap memory back to the operating system (glibc; a no-op elsewhere).

One argon2id verification allocates a 19 MiB block (OWASP parameters). glibc keeps such a
block for reuse once it has freed one, which keeps sign-ins fast (re-faulting 19 MiB costs
about 8 ms a hash here) but leaves every worker 20 MB larger after its first sign-in. So the
worker uses one malloc arena (the block then lives in the main heap, which ``malloc_trim``
can shrink; per-thread arenas it cannot) and the password hasher trims once sign-ins pause
(``features/accounts/passwords.py``): memory is held during a burst and returned after it.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

__all__ = ["release_free_memory", "use_one_malloc_arena"]

_M_ARENA_MAX = -8  # glibc malloc.h

_libc: Any = ctypes.CDLL(None) if sys.platform.startswith("linux") else None
_malloc_trim = getattr(_libc, "malloc_trim", None)  # absent on musl
_mallopt = getattr(_libc, "mallopt", None)


def use_one_malloc_arena() -> bool:
    """Call before starting threads; True if the allocator took the setting."""
    return _mallopt is not None and bool(_mallopt(_M_ARENA_MAX, 1))


def release_free_memory() -> bool:
    """Return free heap pages to the OS; True if any were released."""
    return _malloc_trim is not None and bool(_malloc_trim(0))
