"""Fingerprints: a cheap identity of a checkpoint's files, for incremental recomputation."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from dyntools.checkpoints.records import FORMAT_TORCH, Fingerprint

PICKLE_DIGEST_BYTES: Final = 65536


def header_bytes_digest(path: Path) -> str:
    """SHA-256 of a safetensors header (the JSON after the 8-byte length)."""
    with open(path, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        return hashlib.sha256(handle.read(length)).hexdigest()


def head_digest(path: Path) -> str:
    """SHA-256 of the first 64 KiB of a file (pickled checkpoints have no header to hash)."""
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read(PICKLE_DIGEST_BYTES)).hexdigest()


def combine(files: Sequence[Path], digests: Sequence[str]) -> Fingerprint:
    """One fingerprint over several files (shards): sizes summed, newest mtime, digests chained."""
    size = 0
    mtime_ns = 0
    for path in files:
        stat = path.stat()
        size += stat.st_size
        mtime_ns = max(mtime_ns, stat.st_mtime_ns)
    digest = (
        digests[0] if len(digests) == 1 else hashlib.sha256("".join(digests).encode()).hexdigest()
    )
    return Fingerprint(size=size, mtime_ns=mtime_ns, digest=digest)


def fingerprint_files(files: Sequence[Path], format: str) -> Fingerprint:
    """The current fingerprint of a checkpoint's files, read from disk now."""
    digest = head_digest if format == FORMAT_TORCH else header_bytes_digest
    return combine(files, [digest(path) for path in files])
