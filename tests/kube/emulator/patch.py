"""Object patching: RFC 7386 JSON merge-patch and RFC 6902 JSON patch."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def merge_patch(target: Any, patch: Any, *, strategic: bool = False) -> Any:
    """RFC 7386 JSON merge-patch (``None`` deletes; lists replace). Returns a new value."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if strategic and key.startswith("$"):
            continue  # strategic-merge directives ($patch, $setElementOrder/...) are not emulated
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value, strategic=strategic)
    return result


class PatchTestFailed(Exception):
    pass


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"invalid JSON pointer: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, tokens: list[str]) -> Any:
    for token in tokens:
        if isinstance(doc, list):
            doc = doc[int(token)]
        elif isinstance(doc, dict):
            doc = doc[token]
        else:
            raise KeyError(token)
    return doc


def json_patch(doc: Any, ops: list[Mapping[str, Any]]) -> Any:
    """RFC 6902 JSON patch. Raises PatchTestFailed on a failed ``test``, ValueError otherwise."""
    doc = copy.deepcopy(doc)
    for op in ops:
        kind = op.get("op")
        tokens = _pointer(op.get("path", ""))
        try:
            if kind == "test":
                if _walk(doc, tokens) != op.get("value"):
                    raise PatchTestFailed(f"test failed at {op.get('path')!r}")
                continue
            if kind in ("move", "copy"):
                value = copy.deepcopy(_walk(doc, _pointer(op["from"])))
                if kind == "move":
                    doc = _remove(doc, _pointer(op["from"]))
                doc = _add(doc, tokens, value)
            elif kind == "add":
                doc = _add(doc, tokens, copy.deepcopy(op["value"]))
            elif kind == "remove":
                doc = _remove(doc, tokens)
            elif kind == "replace":
                doc = _remove(doc, tokens)
                doc = _add(doc, tokens, copy.deepcopy(op["value"]))
            else:
                raise ValueError(f"unknown op {kind!r}")
        except PatchTestFailed:
            raise
        except (KeyError, IndexError, TypeError) as e:
            raise ValueError(f"{kind} {op.get('path')!r}: path not found ({e!r})") from e
    return doc


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _walk(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            index = int(last)
            if not 0 <= index <= len(parent):
                raise IndexError(index)
            parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise TypeError("cannot add into a scalar")
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return None
    parent = _walk(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, list):
        del parent[int(last)]
    else:
        del parent[last]
    return doc
