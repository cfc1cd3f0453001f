"""single_threaded: one intra-op thread inside, the caller's setting restored after, also when
blocks nest, raise, or run in several threads."""

from __future__ import annotations

import threading

import pytest
import torch

from dyntools.pipeline.threads import single_threaded


@pytest.fixture
def two_threads() -> object:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_nested_and_disabled(two_threads: object) -> None:
    with single_threaded():
        assert torch.get_num_threads() == 1
        with single_threaded():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1  # the inner exit does not restore early
        with single_threaded(False):
            assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with single_threaded(False):
        assert torch.get_num_threads() == 2


def test_restored_after_an_error(two_threads: object) -> None:
    with pytest.raises(RuntimeError), single_threaded():
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 2


def test_each_thread_keeps_its_own_setting(two_threads: object) -> None:
    # torch's thread count is per thread (OpenMP): a block in one thread leaves others alone.
    inside = threading.Event()
    leave = threading.Event()
    seen: list[int] = []

    def worker() -> None:
        torch.set_num_threads(2)
        with single_threaded():
            seen.append(torch.get_num_threads())
            inside.set()
            leave.wait()
        seen.append(torch.get_num_threads())

    thread = threading.Thread(target=worker)
    thread.start()
    inside.wait()
    seen.append(torch.get_num_threads())  # this thread, while the worker is inside
    leave.set()
    thread.join()
    assert seen == [1, 2, 2]
    assert torch.get_num_threads() == 2
