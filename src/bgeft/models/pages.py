"""Resident pages of memory-mapped vectors: read or written, a file-backed page stays mapped and counts in
the process's RSS until the kernel needs it back, so walking a float16 memmap of a million vectors grows
RSS by the whole file although nothing is held. ``release(arr, start, stop)`` tells the kernel that rows
``start:stop`` of a shared memmap are done with (``madvise(MADV_DONTNEED)``): their pages leave the
process; the data stays in the file (and the page cache) and is read back on the next access.
Arrays that are not shared file mappings (plain arrays, copy-on-write memmaps) are left alone, since
there the call would drop the data itself; an object that is not an array but has ``release(start, stop)``
(``data mine --from-shards``' rows over several memmaps) is asked to release its own.
"""
from __future__ import annotations

import mmap

import numpy as np

_SHARED_MODES = ("r", "r+", "w+")


def release(arr, start: int, stop: int) -> None:
    if not isinstance(arr, np.ndarray) and hasattr(arr, "release"):  # rows spread over several memmaps
        arr.release(start, stop)
        return
    mm = getattr(arr, "_mmap", None)
    if not isinstance(arr, np.memmap) or mm is None or arr.mode not in _SHARED_MODES or not hasattr(mm, "madvise"):
        return
    rows = arr[start:stop]
    if rows.size == 0 or not rows.flags.c_contiguous:
        return
    base = np.frombuffer(mm, np.uint8)  # the mapping's first byte, to turn the rows' address into an offset
    first = rows.ctypes.data - base.ctypes.data
    del base
    lo = first // mmap.PAGESIZE * mmap.PAGESIZE
    mm.madvise(mmap.MADV_DONTNEED, lo, first + rows.nbytes - lo)
