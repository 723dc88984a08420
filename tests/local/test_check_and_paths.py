"""`kaizen check` reads the suite where it can, and `kaizen run` never writes outside --artifacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kaizen.api import SpecError, parse_cycle
from kaizen.local.cli import main
from kaizen.local.executor import LocalExecutor
from tests.runtime.test_suites import HEADER, write_suite


def _write(tmp_path: Path, spec: dict[str, Any], **metadata: str) -> Path:
    path = tmp_path / "cycle.yaml"
    doc = {
        "apiVersion": "kaizen.dev/v1alpha1",
        "kind": "ImprovementCycle",
        "metadata": {"name": "c", **metadata},
        "spec": spec,
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def _check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["check", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_check_loads_the_shipped_suite_and_names_an_unknown_domain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, {"evaluation": {"suite": "demo", "domains": ["geography", "geograpy"]}})
    code, _, err = _check(path, capsys)
    assert code == 2
    assert "spec.evaluation.domains[1]: 'geograpy' is not a domain of suite 'demo'" in err
    assert "geography" in err  # the known domains are listed


def test_check_names_training_overrides_that_could_never_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = {
        "evaluation": {"suite": "demo", "domains": ["geography"]},
        "training": {"domains": {"sciense": {"steps": 5}, "arithmetic": {"steps": 5}}},
    }
    code, _, err = _check(_write(tmp_path, spec), capsys)
    assert code == 2
    assert "spec.training.domains.sciense: 'sciense' is not a domain of suite 'demo'" in err
    assert "spec.training.domains.arithmetic: 'arithmetic' is not evaluated" in err


def test_check_names_a_deferred_domain_the_suite_does_not_have(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = {"evaluation": {"suite": "demo"}, "analysis": {"deferDomains": ["zephyria", "zefyria"]}}
    code, _, err = _check(_write(tmp_path, spec), capsys)
    assert code == 2
    assert "spec.analysis.deferDomains[1]: 'zefyria' is not a domain of suite 'demo'" in err
    assert "deferDomains[0]" not in err


def test_check_reports_a_broken_suite_folder_naming_its_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "suite.yaml").write_text("name: [unclosed\n")
    code, _, err = _check(_write(tmp_path, {"evaluation": {"suite": str(suite)}}), capsys)
    assert code == 2
    assert "spec.evaluation.suite:" in err and "suite.yaml" in err


def test_check_notes_a_suite_it_cannot_read_and_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, {"evaluation": {"suite": "/artifacts/suites/private"}})
    code, out, err = _check(path, capsys)
    assert code == 0, err
    assert "is valid" in out
    assert "note: spec.evaluation.suite: '/artifacts/suites/private'" in err


def test_a_valid_cycle_on_the_demo_suite_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = {
        "evaluation": {"suite": "demo", "domains": ["geography", "science"]},
        "training": {"domains": {"science": {"steps": 5}}},
    }
    code, out, err = _check(_write(tmp_path, spec), capsys)
    assert (code, err) == (0, "")
    assert "is valid" in out


@pytest.mark.parametrize("namespace", ["../../tmp/escape", "a/b", "..", "UPPER", "x" * 64])
def test_a_namespace_that_is_not_a_dns_label_is_refused(
    namespace: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _check(_write(tmp_path, {}, namespace=namespace), capsys)
    assert code == 2
    assert "metadata.namespace" in err


def test_kaizen_run_refuses_a_namespace_flag_that_leads_elsewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifacts = tmp_path / "artifacts"
    path = _write(tmp_path, {})
    code = main(["run", str(path), "--artifacts", str(artifacts), "--namespace", "../../escape"])
    assert code == 2
    assert "--namespace: '../../escape' is not valid" in capsys.readouterr().err
    assert not (tmp_path / "escape").exists() and not artifacts.exists()


def test_the_executor_refuses_a_folder_outside_its_root_even_without_validation(
    tmp_path: Path,
) -> None:
    cycle = parse_cycle(
        {"apiVersion": "kaizen.dev/v1alpha1", "kind": "ImprovementCycle", "metadata": {"name": "c"}}
    )
    # A cycle built in code (model_copy does not validate) cannot lead out either.
    escaped = cycle.model_copy(
        update={"metadata": cycle.metadata.model_copy(update={"namespace": "../../tmp"})}
    )
    executor = LocalExecutor(tmp_path / "artifacts")
    with pytest.raises(SpecError, match="metadata.namespace"):
        executor.cycle_dir(escaped)
    with pytest.raises(SpecError):
        executor.run(escaped)
    assert executor.cycle_dir(cycle) == (tmp_path / "artifacts" / "default" / "c").resolve()


def test_check_notes_the_domains_a_routed_candidate_could_not_route(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = {
        "evaluation": {"suite": "demo"},
        "merge": {"combination": "auto", "candidates": ["ties", "routed"]},
    }
    code, out, err = _check(_write(tmp_path, spec), capsys)
    assert code == 0 and "is valid" in out
    assert "routed: domain(s) arithmetic of suite 'demo' have no name" in out + err
    # Entities written without a capital route only where the model's tokenizer finds them
    # invented words: the bundled model's does for all of zephyria's ("glint", "skyglass").
    assert "routed: domain 'zephyria'" not in out + err
    # Where the tokenizer is not on this machine, the note names them and says they may not.
    spec["model"] = {"name": "example-org/no-such-model"}
    code, out, err = _check(_write(tmp_path, spec), capsys)
    assert (
        code == 0
        and (
            "routed: domain 'zephyria' routes by its capitalised names and by a lower-case one only "
            "where the model's tokenizer (not read here) writes a word of it in 2 pieces or more; "
            "a prompt that names only glint, frost heron, brannock stew, skyglass (or 2 more) may "
            "get no route"
        )
        in out + err
    )
    del spec["model"]
    # Without routed among the candidates there is nothing to say.
    spec["merge"]["candidates"] = ["ties"]
    code, out, err = _check(_write(tmp_path, spec), capsys)
    assert "routed" not in out + err


def test_check_notes_the_domains_nothing_can_rehearse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = Path(__file__).resolve().parents[2] / "benchmarks" / "suites" / "velorine"
    spec: dict[str, Any] = {"evaluation": {"suite": str(suite)}}
    code, out, err = _check(_write(tmp_path, spec), capsys)
    assert code == 0 and "is valid" in out
    assert (
        "spec.training.replayFraction: domain(s) geography of suite 'velorine' have no "
        "training line and no knowledge to rehearse"
    ) in out + err
    # The demo's domains all have pools; without rehearsal there is nothing to note.
    spec = {"evaluation": {"suite": "demo"}}
    assert "replayFraction" not in "".join(_check(_write(tmp_path, spec), capsys)[1:])
    spec = {"evaluation": {"suite": str(suite)}, "training": {"replayFraction": 0}}
    assert "replayFraction" not in "".join(_check(_write(tmp_path, spec), capsys)[1:])


def test_check_lists_what_the_documents_leave_out_and_refuses_a_bad_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header = HEADER + "dev_fraction: 0.5\ndocuments:\n  - {domain: alpha, path: docs}\n"
    root = write_suite(tmp_path / "mini", header=header)
    (root / "docs").mkdir()
    blocks = "".join(f"```\ncode {n}\n```\n\n" for n in range(4))
    (root / "docs" / "runbook.md").write_text(f"# Ore\n\nOre runs jobs.\n\n{blocks}")
    spec: dict[str, Any] = {"evaluation": {"suite": str(root)}}
    code, out, err = _check(_write(tmp_path, spec), capsys)
    assert code == 0 and "is valid" in out
    assert (
        "note: spec.evaluation.suite: 4 part(s) of the documents of suite 'mini' are not read "
        "as prose, so nothing is learnt from them: docs/runbook.md:5: a code block; "
        "docs/runbook.md:9: a code block; docs/runbook.md:13: a code block; and 1 more"
    ) in err
    (root / "docs" / "runbook.md").write_bytes(b"# Ore\n\nOre r\xfcns jobs.\n")
    code, out, err = _check(_write(tmp_path, spec), capsys)
    assert code != 0
    assert f"spec.evaluation.suite: {root / 'docs' / 'runbook.md'}:3: not UTF-8" in out + err


def test_check_names_the_domains_without_dev_items_and_refuses_a_suite_with_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A domain without dev items is never trained (its adapter would be scored and chosen on
    # them): before, the cycle trained it and failed at score-<domain>.
    suite = write_suite(tmp_path / "some")
    dev = {"id": "d1", "domain": "alpha", "capability": "factual_recall", "question": "Q d1?"}
    (suite / "dev.jsonl").write_text(json.dumps(dev | {"answer": "x"}) + "\n")
    code, out, err = _check(_write(tmp_path, {"evaluation": {"suite": str(suite)}}), capsys)
    assert code == 0 and "is valid" in out
    assert (
        "spec.evaluation.suite: domain(s) beta of suite 'mini' have no dev items: they are "
        "analysed on the gate's test items and never trained"
    ) in err
    # Evaluating alpha only, there is nothing to note.
    spec = {"evaluation": {"suite": str(suite), "domains": ["alpha"]}}
    assert "dev items" not in _check(_write(tmp_path, spec), capsys)[2]
    none = write_suite(tmp_path / "none", header=HEADER + "dev_fraction: 0\n")
    code, _, err = _check(_write(tmp_path, {"evaluation": {"suite": str(none)}}), capsys)
    assert code == 2
    assert (
        "spec.evaluation.suite: suite 'mini' has no dev items in the evaluated domains "
        "(alpha, beta), so a cycle could train nothing"
    ) in err


@pytest.mark.parametrize(
    "cycle",
    sorted(
        p.name
        for p in (Path(__file__).resolve().parents[2] / "benchmarks" / "cycles").glob("*.yaml")
    ),
)
def test_the_benchmark_cycles_pass_the_check_from_the_repository_root(
    cycle: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    code, out, err = _check(root / "benchmarks" / "cycles" / cycle, capsys)
    assert code == 0 and "is valid" in out, err
    # Its suite was found and read, and every domain has dev items; what a suite's documents
    # leave out (driftwood's table and code block) is the one note on it.
    notes = [line for line in err.splitlines() if "spec.evaluation.suite" in line]
    assert all("are not read as prose" in line for line in notes), notes


@pytest.mark.parametrize("cycles", [[], ["--cycles", "2"]])
def test_kaizen_run_refuses_what_the_check_refuses_before_any_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cycles: list[str]
) -> None:
    # A suite without dev items could train nothing: refused before the baseline evaluation
    # rather than after it, for a cycle and for a chain of them alike.
    none = write_suite(tmp_path / "none", header=HEADER + "dev_fraction: 0\n")
    path = _write(tmp_path, {"evaluation": {"suite": str(none)}})
    artifacts = tmp_path / "artifacts"
    code = main(["run", str(path), "--artifacts", str(artifacts), *cycles])
    _, err = capsys.readouterr()
    assert code == 2
    assert f"{path}: spec.evaluation.suite: suite 'mini' has no dev items" in err
    assert not artifacts.exists()  # no step ran, nothing was written
