"""The layout guard: `kaizen` is a namespace package and the stdlib `operator` is not shadowed."""

from __future__ import annotations

import importlib
import operator
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_stdlib_operator_is_not_shadowed() -> None:
    assert hasattr(operator, "itemgetter")
    assert not str(getattr(operator, "__file__", "")).startswith(str(REPO))


def test_no_init_files_break_the_namespace() -> None:
    for forbidden in (
        "operator/__init__.py",
        "operator/kaizen/__init__.py",
        "runtime/kaizen/__init__.py",
        "evaluator/kaizen/__init__.py",
        "trainer/kaizen/__init__.py",
    ):
        assert not (REPO / forbidden).exists(), forbidden


def test_kaizen_spans_the_four_component_folders() -> None:
    kaizen = importlib.import_module("kaizen")
    paths = {Path(p).parent.name for p in kaizen.__path__}
    assert {"operator", "runtime", "evaluator", "trainer"} <= paths


def test_stdlib_operator_is_intact_from_the_repo_root() -> None:
    # Running from the repository root puts '' on sys.path, next to the `operator/` folder.
    code = "import operator, sys; assert hasattr(operator, 'itemgetter'); print(operator.__name__)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "operator"


def test_api_imports_nothing_else_of_kaizen() -> None:
    code = (
        "import sys, kaizen.api, kaizen.api.crd, kaizen.cycle\n"
        "bad = [m for m in sys.modules if m.startswith('kaizen.') and not m.startswith(('kaizen.api', 'kaizen.cycle'))]\n"
        "heavy = [m for m in ('torch', 'transformers', 'kubernetes', 'kopf') if m in sys.modules]\n"
        "assert not bad and not heavy, (bad, heavy)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_import_contracts_hold() -> None:
    """pyproject's [tool.importlinter] contracts (the layering of docs/design.md §4)."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    if not lint_imports.exists():
        pytest.skip("import-linter is not installed in this environment")
    done = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
