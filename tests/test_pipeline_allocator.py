"""return_large_frees: after it, glibc serves large requests from their own mappings even after a
larger block was freed (which would otherwise raise its threshold and fragment the heap)."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

from dyntools.pipeline.allocator import return_large_frees

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Counts glibc's mmapped blocks (mallinfo2().hblks) while a 4 MB buffer is alive, after a 20 MB
# buffer was allocated and freed.
_PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from dyntools.pipeline.allocator import return_large_frees

    class Mallinfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = Mallinfo2
    if sys.argv[1] == "fixed":
        assert return_large_frees()
    big = bytearray(20 << 20)
    del big
    before = libc.mallinfo2().hblks
    medium = bytearray(4 << 20)
    print(libc.mallinfo2().hblks - before)
    """
)


def _mapped_blocks(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip())


@pytest.mark.skipif(not GLIBC, reason="glibc's allocator only")
def test_large_requests_keep_their_own_mapping_after_a_larger_free() -> None:
    assert _mapped_blocks("default") == 0  # glibc's dynamic threshold: from the heap
    assert _mapped_blocks("fixed") == 1


def test_idempotent_and_honest_about_other_c_libraries() -> None:
    assert return_large_frees() is GLIBC
    assert return_large_frees() is GLIBC
