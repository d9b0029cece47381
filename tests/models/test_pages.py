"""release(): the rows' pages leave the process (its RSS), the data stays in the file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bgeft.models.pages import release

SMAPS = Path("/proc/self/smaps")


def _resident_kb(path: Path) -> int:
    """Resident kB of this process's mappings of ``path`` (from /proc/self/smaps)."""
    total, inside = 0, False
    for line in SMAPS.read_text().splitlines():
        if line[:1].isalnum() and "-" in line.split(" ", 1)[0]:
            inside = line.endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not SMAPS.exists(), reason="needs Linux /proc/self/smaps")
def test_release_drops_resident_pages_and_keeps_the_data(tmp_path):
    path = tmp_path / "dense.npy"
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(4096, 1024))  # 8 MB
    arr[:] = np.arange(4096, dtype=np.float16)[:, None]
    assert _resident_kb(path) >= 8000
    release(arr, 0, 2048)
    assert 4000 <= _resident_kb(path) <= 4200
    release(arr, 2048, 4096)
    assert _resident_kb(path) <= 8
    arr.flush()
    assert float(arr[4095, 0]) == 4096.0 and float(arr[1, 1]) == 1.0  # read back from the file
    again = np.load(path, mmap_mode="r")
    np.testing.assert_array_equal(again[:, 3], np.arange(4096, dtype=np.float16))
    release(again, 0, len(again))          # a read-only shared mapping: allowed
    plain = np.ones((4, 4))
    release(plain, 0, 4)                   # not a memmap: nothing happens
    cow = np.load(path, mmap_mode="c")
    cow[0] = 7
    release(cow, 0, 1)                     # copy-on-write: dropping would lose the change, so it is kept
    assert float(cow[0, 0]) == 7.0


@pytest.mark.skipif(not SMAPS.exists(), reason="needs Linux /proc/self/smaps")
def test_release_of_rows_over_several_memmaps(tmp_path):
    from bgeft.data.shards import ShardRows

    paths = [tmp_path / "a.npy", tmp_path / "b.npy"]
    parts = [np.lib.format.open_memmap(p, mode="w+", dtype=np.float16, shape=(1024, 1024)) for p in paths]
    for part in parts:
        part[:] = 1
    rows = ShardRows(parts)
    release(rows, 512, 1536)                     # the second half of a, the first half of b
    assert [_resident_kb(p) for p in paths] == pytest.approx([1024, 1024], abs=8)
    release(rows, 0, 2048)
    assert max(_resident_kb(p) for p in paths) <= 8 and float(rows[2047][5]) == 1.0
