"""The Dockerfile's targets, read as Docker reads them (no Docker engine needed).

operator, evaluator and trainer are targets; evaluator and trainer share one `ml` stage; the
operator installs only the `operator` extra (no torch) and is the default (last) target; every
target runs as a numeric non-root user; versions are build arguments.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
TARGETS = ("operator", "evaluator", "trainer")


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse(text: str) -> tuple[list[str], list[Stage]]:
    """Global ARGs and stages; continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    global_args: list[str] = []
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.fullmatch(r"(?:--\S+\s+)*(\S+)\s+AS\s+(\S+)", args.strip(), re.IGNORECASE)
            assert match, f"every stage is named: FROM {args}"
            stages.append(Stage(name=match.group(2), base=match.group(1)))
        elif not stages:
            assert keyword == "ARG", line
            global_args.append(args.split("=")[0])
        else:
            stages[-1].instructions.append((keyword, args.strip()))
    return global_args, stages


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    _, parsed = parse(DOCKERFILE.read_text())
    return {s.name: s for s in parsed}


def _chain(stages: dict[str, Stage], name: str) -> list[Stage]:
    """The stage and the stages it is built FROM, nearest first."""
    chain = [stages[name]]
    while chain[-1].base in stages:
        chain.append(stages[chain[-1].base])
    return chain


def _extras(stages: dict[str, Stage], name: str) -> set[str]:
    """The `kaizen[...]` extras the target's stages install."""
    found: set[str] = set()
    for stage in _chain(stages, name):
        for run in stage.all("RUN"):
            for extras in re.findall(r"kaizen-\*\.whl\)\[([\w,-]+)\]", run):
                found |= set(extras.split(","))
    return found


def test_targets_exist_and_operator_is_the_default(stages: dict[str, Stage]) -> None:
    assert set(TARGETS) <= set(stages)
    _, parsed = parse(DOCKERFILE.read_text())
    assert parsed[-1].name == "operator"  # `docker build .` builds the operator


def test_operator_installs_only_the_operator_extra(stages: dict[str, Stage]) -> None:
    assert _extras(stages, "operator") == {"operator"}
    chain = [s.name for s in _chain(stages, "operator")]
    assert "ml" not in chain and "wheel" not in chain  # no torch, no build stage underneath
    runs = " ".join(r for s in _chain(stages, "operator") for r in s.all("RUN"))
    assert "torch" not in runs.replace('! python -c "import torch"', "")
    assert not re.search(r"apt-get|gcc|build-essential", runs)
    # The extra exists and holds no ML library.
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert not any(re.match(r"(torch|transformers|peft)\b", dep) for dep in extras["operator"])


def test_evaluator_and_trainer_share_the_ml_stage(stages: dict[str, Stage]) -> None:
    for target in ("evaluator", "trainer"):
        assert stages[target].base == "ml"
        assert _extras(stages, target) == {"ml", "lmeval", "qlora"}
        assert not stages[target].all("RUN"), (
            "nothing after the shared stage: they share its layers"
        )
    ml_runs = " ".join(stages["ml"].all("RUN"))
    assert "--index-url" in ml_runs and "torch==" in ml_runs  # the CUDA build, from PyTorch's index
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert "ml" in extras


@pytest.mark.parametrize("target", TARGETS)
def test_every_target_runs_as_a_numeric_non_root_user(
    stages: dict[str, Stage], target: str
) -> None:
    users = [u for s in reversed(_chain(stages, target)) for u in s.all("USER")]
    assert users, target
    uid = users[-1].split(":")[0]
    # Numeric, so that the kubelet can enforce runAsNonRoot; 1000 is what the Jobs set.
    assert uid.isdigit() and int(uid) != 0
    assert uid == "1000"


def test_entrypoints_are_the_programs(stages: dict[str, Stage]) -> None:
    assert stages["operator"].all("ENTRYPOINT") == ['["kopf", "run", "-m", "kaizen.operator"]']
    assert stages["evaluator"].all("ENTRYPOINT") == ['["python", "-m", "kaizen.evaluator"]']
    assert stages["trainer"].all("ENTRYPOINT") == ['["python", "-m", "kaizen.trainer"]']
    # The chart's default ports.
    assert stages["operator"].all("EXPOSE") == ["8080 9090"]


def test_versions_are_build_arguments(stages: dict[str, Stage]) -> None:
    global_args, _ = parse(DOCKERFILE.read_text())
    assert {"PYTHON_VERSION", "KAIZEN_VERSION"} <= set(global_args)
    ml_args = {a.split("=")[0] for a in stages["ml"].all("ARG")}
    assert {"TORCH_VERSION", "TORCH_INDEX_URL", "SMOLLM2_VERSION"} <= ml_args
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert f"ARG KAIZEN_VERSION={project['version']}" in DOCKERFILE.read_text()
    torch_pin = next(d for d in project["optional-dependencies"]["ml"] if d.startswith("torch=="))
    assert f"ARG TORCH_VERSION={torch_pin.split('==')[1]}" in DOCKERFILE.read_text()


def test_build_context_holds_what_the_copies_need(stages: dict[str, Stage]) -> None:
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = [
        src
        for stage in stages.values()
        for args in stage.all("COPY")
        if not args.startswith("--from")
        for src in args.split()[:-1]
    ]
    assert copied
    for src in copied:
        path = src.rstrip("/")
        assert (REPO / path).exists(), src
        assert path not in ignored, f"{src} is copied but .dockerignore leaves it out"
    # Never in an image: VCS data, virtualenvs, tests, local artifacts.
    assert {".git", ".venv", "tests", "artifacts"} <= set(ignored)
