"""What a step's output was made from, and whether an earlier output may stand for a new run.

A step finds its folder already holding a complete output when its Job is retried, when
`kaizen run --restart` runs the cycle again, or when a cycle of the same name is created
again over the same artifact volume. That output is reused only when it was made from the
same inputs: the step's typed arguments (`kaizen.api.args`, less the options that only shape
logs and tracking), the Kaizen version, and the content of every local file or folder the step
reads (the model and adapter folders, the suite, the results and plan of earlier steps, extra
data). `provenance.json` records them next to the output, written just before the completion
marker; `changes` says in words what differs when they do not match.

Folders are digested file by file: a file's content up to `CONTENT_LIMIT` bytes, and its size
and modification time above it (model weights of many GiB would otherwise be read in full at
every step start). A hub model id is not read locally: its name and `--revision` are part of
the arguments.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from kaizen.api.args import StepArgs
from kaizen.api.args_combination import MergeArgs
from kaizen.api.artifacts import StepProvenance
from kaizen.api.summary import file_digest

#: Arguments that change logs and tracking only, never a step's output.
NOT_INPUTS = frozenset({"quiet", "tracking_mode", "tracking_project", "tracking_entity"})
#: Arguments that always name a local file or folder the step reads.
PATH_FIELDS = ("adapters", "baseline", "candidate", "plan", "extra_data")
#: Arguments that name a local file or folder when one exists there (else a hub id or a name).
MAYBE_PATH_FIELDS = ("model", "suite", "teacher_model")
#: Files larger than this are fingerprinted by size and modification time, not read.
CONTENT_LIMIT = 64 * 1024 * 1024
MISSING = "missing"


def kaizen_version() -> str:
    """The installed Kaizen version (`unknown` when not installed as a distribution)."""
    try:
        return metadata.version("kaizen")
    except metadata.PackageNotFoundError:
        return "unknown"


def _values(args: StepArgs, name: str) -> list[str]:
    value = getattr(args, name, None)
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


def input_paths(args: StepArgs) -> list[str]:
    """The local files and folders `args` tell the step to read, in a stable order."""
    paths: list[str] = []
    for name in PATH_FIELDS:
        paths += _values(args, name)
    for name in MAYBE_PATH_FIELDS:
        paths += [v for v in _values(args, name) if os.path.isabs(v) or os.path.exists(v)]
    if isinstance(args, MergeArgs):
        paths += [path for _, path in args.source_pairs()]
    return sorted(set(paths))


def _scratch(path: Path) -> bool:
    # Temporary files of an atomic write in progress are not part of a folder's content.
    return path.name.startswith(".") and path.name.endswith((".tmp", ".lock"))


def _file_fingerprint(path: Path) -> str:
    stat = path.stat()
    if stat.st_size > CONTENT_LIMIT:
        return f"size:{stat.st_size}:mtime:{stat.st_mtime_ns}"
    return file_digest(path)


def path_digest(path: str | os.PathLike[str]) -> str:
    """`sha256:…` of a file, or of a folder's files (names and contents); `missing` if absent."""
    target = Path(path)
    if target.is_file():
        return _file_fingerprint(target)
    if not target.is_dir():
        return MISSING
    sha = hashlib.sha256()
    for item in sorted(target.rglob("*")):
        if item.is_file() and not _scratch(item):
            relative = item.relative_to(target).as_posix()
            sha.update(f"{relative}\0{_file_fingerprint(item)}\n".encode())
    return f"sha256:{sha.hexdigest()}"


def shaping_args(args: StepArgs | None) -> dict[str, Any]:
    """The arguments that shape a step's output, as JSON values."""
    if args is None:
        return {}
    dumped = args.model_dump(mode="json")
    return {name: value for name, value in sorted(dumped.items()) if name not in NOT_INPUTS}


def step_provenance(
    step: str, args: StepArgs | None = None, extra_inputs: Iterable[str | os.PathLike[str]] = ()
) -> StepProvenance:
    """The provenance of a run of `step` with `args`, reading `extra_inputs` besides theirs."""
    paths = set(input_paths(args) if args is not None else [])
    paths |= {str(p) for p in extra_inputs}
    inputs = {path: path_digest(path) for path in sorted(paths)}
    shaped = shaping_args(args)
    version = kaizen_version()
    command = args.COMMAND if args is not None else step
    key = json.dumps(
        {"kaizen": version, "command": command, "args": shaped, "inputs": inputs},
        sort_keys=True,
        separators=(",", ":"),
    )
    return StepProvenance(
        step=step,
        command=command,
        kaizen_version=version,
        args=shaped,
        inputs=inputs,
        digest="sha256:" + hashlib.sha256(key.encode()).hexdigest(),
    )


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def changes(before: StepProvenance, now: StepProvenance, limit: int = 6) -> list[str]:
    """What differs between two provenances, one short phrase each (at most `limit`, then a count)."""
    found: list[str] = []
    if before.kaizen_version != now.kaizen_version:
        found.append(f"Kaizen {before.kaizen_version} → {now.kaizen_version}")
    if before.command != now.command:
        found.append(f"command {before.command} → {now.command}")
    for name in sorted(before.args.keys() | now.args.keys()):
        old, new = before.args.get(name), now.args.get(name)
        if old != new:
            found.append(f"{_flag(name)} {_short(old)} → {_short(new)}")
    for path in sorted(before.inputs.keys() | now.inputs.keys()):
        old_digest, new_digest = before.inputs.get(path), now.inputs.get(path)
        if old_digest == new_digest:
            continue
        if new_digest == MISSING:
            found.append(f"{path} is gone")
        elif old_digest is None:
            found.append(f"{path} is read now")
        elif new_digest is None:
            found.append(f"{path} is no longer read")
        else:
            found.append(f"{path} changed")
    if not found and before.digest != now.digest:
        found.append("the inputs' digest changed")
    if len(found) > limit:
        found = [*found[:limit], f"{len(found) - limit} more"]
    return found


def describe(found: Sequence[str]) -> str:
    """`changes` as one clause."""
    return "; ".join(found) or "no difference"
