"""Single-threaded torch for work too small to share.

Torch's intra-op thread pool pays for itself on large tensors, but on the matrices of small
models the hand-offs cost more than they save: on the sample modular-addition checkpoint (largest
matrix 256 x 64) the weight metrics take 4.1 ms with 2 threads and 3.5 ms with one.

``torch.set_num_threads`` acts on the calling thread (OpenMP keeps the count per thread; checked
here), so each thread saves and restores its own setting; nested blocks restore once, at the
outermost exit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

# Below this many values in the largest tensor, a second thread did not pay off here: an SVD of
# 1024 x 256 took 6.6 ms on one thread and 9.7 ms on two, of 512 x 512 19.5 ms against 17.3 ms.
SERIAL_BELOW = 1 << 18


class _ThreadState(threading.local):
    depth = 0
    saved = 1


_state = _ThreadState()


@contextmanager
def single_threaded(enabled: bool = True) -> Iterator[None]:
    """Runs the block with one intra-op thread when ``enabled`` (the old count is restored)."""
    if not enabled:
        yield
        return
    if _state.depth == 0:
        _state.saved = torch.get_num_threads()
        torch.set_num_threads(1)
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1
        if _state.depth == 0:
            torch.set_num_threads(_state.saved)
