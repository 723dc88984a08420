"""Label and field selectors, as lists, watches and delete-collection apply them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


def _split_selector(selector: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


_SET_RE = re.compile(r"^([^\s!=]+)\s+(in|notin)\s+\((.*)\)$")


def match_labels(selector: str | None, labels: Mapping[str, str] | None) -> bool:
    """Match a label selector string (equality- and set-based) against labels."""
    if not selector:
        return True
    labels = labels or {}
    for req in _split_selector(selector):
        if m := _SET_RE.match(req):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in" and labels.get(key) not in values:
                return False
            if op == "notin" and key in labels and labels[key] in values:
                return False
        elif "!=" in req:
            key, value = (s.strip() for s in req.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in req:
            key, value = (s.strip() for s in re.split(r"==?", req, maxsplit=1))
            if labels.get(key) != value:
                return False
        elif req.startswith("!"):
            if req[1:].strip() in labels:
                return False
        elif req not in labels:
            return False
    return True


def match_fields(selector: str | None, obj: Mapping[str, Any]) -> bool:
    """Match a field selector (``metadata.name=x,status.phase!=Running``) against an object."""
    if not selector:
        return True
    for req in _split_selector(selector):
        negate = "!=" in req
        path, value = (s.strip() for s in re.split(r"!=|==?", req, maxsplit=1))
        current: Any = obj
        for part in path.split("."):
            current = current.get(part) if isinstance(current, Mapping) else None
        current = "" if current is None else str(current)
        if (current == value) == negate:
            return False
    return True
