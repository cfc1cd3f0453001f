"""Lay files out as a Hugging Face hub cache, as ``hf_hub_download`` does, without a network.

The tests and the trajectory benchmark build caches with it. It calls huggingface_hub's own
cache writers (the blob-to-snapshot link and the ref file), so the layout is the library's
(relative links ``snapshots/<commit>/<file> -> ../../blobs/<sha256>``, ``refs/<branch>``
holding the commit with no newline); only the download is left out.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from huggingface_hub.file_download import (
    _cache_commit_hash_for_specific_revision,
    _create_symlink,
    repo_folder_name,
)


def commit_hash(repo_id: str, files: Mapping[str, Path]) -> str:
    """A 40-hex commit id that depends on the repository and the files' contents."""
    digest = hashlib.sha1(repo_id.encode(), usedforsecurity=False)
    for name in sorted(files):
        digest.update(name.encode())
        digest.update(_sha256(files[name]).encode())
    return digest.hexdigest()


def write_revision(
    cache: Path,
    repo_id: str,
    files: Mapping[str, Path],
    branches: Iterable[str] = (),
    commit: str | None = None,
) -> Path:
    """Put ``files`` (name in the repository -> a file on disk, copied) into the cache as one
    revision of ``repo_id``, with ``branches`` pointing at it; the snapshot folder is returned.

    With no branch the revision is as ``hf_hub_download(revision=<commit hash>)`` leaves it:
    a detached snapshot no ref names.
    """
    storage = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
    commit = commit or commit_hash(repo_id, files)
    snapshot = storage / "snapshots" / commit
    for name, source in files.items():
        blob = storage / "blobs" / _sha256(source)
        blob.parent.mkdir(parents=True, exist_ok=True)
        new_blob = not blob.exists()
        if new_blob:
            shutil.copyfile(source, blob)
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        _create_symlink(str(blob), str(target), new_blob=new_blob)
    for branch in branches:
        _cache_commit_hash_for_specific_revision(str(storage), branch, commit)
    return snapshot


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
