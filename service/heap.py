"""The process's heap: what the service does so that memory it used for a request goes back to
the system, and what it loaded stays out of the garbage collector's way.

glibc's malloc raises its mmap threshold each time a large block is freed (up to 32 MiB): after
one large request, the buffers of the next ones come from the heap, whose freed pages stay in the
process's resident memory (the idle process crept from ~145 to ~300 MiB after a run of the
largest bodies). A fixed threshold keeps large buffers in mappings of their own, unmapped when
freed; and when the request memory falls back to nothing after a large request, the heap's free
pages are handed back (`trim`).
"""

from __future__ import annotations

import ctypes
import gc

# mallopt(3) parameters
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 * 1024  # glibc's initial value, fixed (setting it stops the adjustment)
TRIM_THRESHOLD = 1024 * 1024


def _glibc():
    """glibc, for `mallopt` and `malloc_trim`; None elsewhere (musl, macOS)."""
    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None


_LIBC = _glibc()


def configure() -> None:
    """Fixes malloc's thresholds; called once a worker process starts."""
    if _LIBC is not None:
        _LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        _LIBC.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)


def trim() -> None:
    """Hands the C heap's free pages back to the system."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def settle_heap() -> None:
    """Hides what is loaded from the cyclic garbage collector (`gc.freeze`): its full collections
    would otherwise walk every vocabulary entry, pauses of 10-20 ms under load. Collects first, so
    that what a reload or unload let go is freed, not frozen; then trims (loading parses JSON and
    ONNX files whose buffers would otherwise stay in the process's resident memory)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    trim()
