"""docs/deploy.md stays in step with the chart: every value is in its table, the Lua is current."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "deploy.md"
#: Values documented as a whole (their keys are Kubernetes fields).
OPAQUE = {"resources", "podSecurityContext", "securityContext"}


def _leaves(values: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in values.items():
        path = prefix + key
        if isinstance(value, dict) and value and path not in OPAQUE:
            keys += _leaves(value, path + ".")
        else:
            keys.append(path)
    return keys


def _documented() -> set[str]:
    """Keys in the first column of the values table; `a.b.c` / `.d` means a.b.c and a.b.d."""
    section = DOC.read_text().split("## Values", 1)[1].split("\n## ", 1)[0]
    keys: set[str] = set()
    for row in section.splitlines():
        if not row.startswith("| `"):
            continue
        cell = row.split("|")[1]
        first = ""
        for name in re.findall(r"`([^`]+)`", cell):
            if name.startswith(".") and first:
                name = first.rsplit(".", 1)[0] + name
            first = first or name
            keys.add(name)
    return keys


def test_every_value_is_in_the_table() -> None:
    values = yaml.safe_load((REPO / "charts" / "kaizen" / "values.yaml").read_text())
    missing = set(_leaves(values)) - _documented()
    assert not missing, f"docs/deploy.md lacks rows for {sorted(missing)}"
    unknown = _documented() - set(_leaves(values))
    assert not unknown, f"docs/deploy.md documents values the chart lacks: {sorted(unknown)}"


def test_the_documented_health_check_is_the_shipped_one() -> None:
    lua = (REPO / "manifests" / "gitops" / "argocd" / "improvementcycle-health.lua").read_text()
    indented = "\n".join("    " + line if line else "" for line in lua.splitlines())
    assert indented in DOC.read_text()
