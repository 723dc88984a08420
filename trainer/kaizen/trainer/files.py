"""Atomic publication of artifact directories (a temp folder, then one rename).

A step's outputs must never be seen half-written: a preempted Job or a reader racing
the writer would otherwise find an adapter folder with a config and no weights. Files
use `kaizen.api.summary.atomic_write_*`; folders use `atomic_directory` below.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temp folder beside `target`; on success it replaces `target` in one rename.

    An existing `target` is an earlier, unfinished attempt of the same step (a finished
    step is reused by `run_step` before any work starts), so it is replaced.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        # mkdtemp (and some writers) create owner-only modes; other steps, possibly
        # running as other users on the shared volume, must be able to read the result.
        tmp.chmod(0o755)
        for path in tmp.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        if target.exists():
            # A directory cannot be renamed over a non-empty one: move the old one
            # aside first so that `target` is missing only between two renames.
            old = Path(
                tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent)
            )
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def copy_directory(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Copy the folder `source` to `target` atomically."""
    with atomic_directory(target) as tmp:
        for item in Path(source).iterdir():
            if item.is_dir():
                shutil.copytree(item, tmp / item.name)
            else:
                shutil.copy2(item, tmp / item.name)
    return Path(target)
