"""Summaries over 4 KiB: every step's summary is shortened to fit, and says what it left out;
one that cannot fit is a permanent failure (exit 3, never retried), named as such.

The validate and analyze programs run through their real command line (`run_step` included);
the results files are hand-made with many domains and long domain names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaizen.api import EXIT_CONFIG_ERROR, EXIT_OK, SUMMARY_MAX_BYTES, parse_summary
from kaizen.api.summary import (
    AdapterDigest,
    PlanDigest,
    StepSummary,
    SummaryTooLarge,
    ValidationDigest,
    fit_summary,
)
from kaizen.evaluator.cli import main
from tests.evaluator.results_factory import domain_records, results

LONG = "a-domain-with-a-rather-long-descriptive-name-for-the-summary-test"


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def _run(argv: list[str], summary_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("KAIZEN_SUMMARY_PATH", str(summary_path))
    return main([*argv, "--tracking-mode", "disabled", "--quiet"])


def test_validate_with_40_regressing_long_named_domains_fits_and_says_what_it_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Twelve items per domain, all lost: significant even after Holm over 40 domains.
    domains = [f"{LONG}-{i:02d}" for i in range(40)]
    baseline = _write(
        tmp_path / "b.json", results([r for d in domains for r in domain_records(d, [1] * 12)])
    )
    candidate = _write(
        tmp_path / "c.json", results([r for d in domains for r in domain_records(d, [0] * 12)])
    )
    summary_path = tmp_path / "termination-log"
    code = _run(
        [
            "validate",
            "--baseline", str(baseline),
            "--candidate", str(candidate),
            "--output", str(tmp_path / "out"),
        ],
        summary_path,
        monkeypatch,
    )  # fmt: skip
    assert code == EXIT_OK, summary_path.read_text()
    raw = summary_path.read_bytes()
    assert len(raw) <= SUMMARY_MAX_BYTES
    summary = parse_summary(raw)
    validation = summary.validation
    assert validation is not None and validation.verdict == "Reject"
    # Shortened, and the summary says by how much; report.json keeps all 40.
    assert summary.trimmed and all(count > 0 for count in summary.trimmed.values())
    kept = len(validation.regressions) + summary.trimmed.get("validation.regressions", 0)
    assert kept == 40
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert len(report["regressions"]) == 40 and len(report["domains"]) == 40


def test_analyze_with_long_domain_names_fits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Twelve priority domains of ~200 characters: the message naming them all overflowed.
    domains = [f"{LONG}-{LONG}-{LONG}-{i:02d}" for i in range(12)]
    records = [r | {"split": "dev"} for d in domains for r in domain_records(d, [0, 0])]
    baseline = _write(tmp_path / "results.json", results(records))
    summary_path = tmp_path / "termination-log"
    code = _run(
        [
            "analyze",
            "--baseline", str(baseline),
            "--output", str(tmp_path / "out"),
            "--max-domains", "12",
            "--threshold", "0.9",
        ],
        summary_path,
        monkeypatch,
    )  # fmt: skip
    assert code == EXIT_OK, summary_path.read_text()
    raw = summary_path.read_bytes()
    assert len(raw) <= SUMMARY_MAX_BYTES
    summary = parse_summary(raw)
    # The engine needs every priority domain: they are never cut.
    assert summary.plan is not None and sorted(summary.plan.priority_domains) == sorted(domains)
    assert summary.message.endswith("…")
    # the weak domains went whole (not known), never as a shorter list a chain could misread
    assert summary.plan.weak_domains is None and summary.trimmed["plan.weakDomains"] == 12


def test_a_summary_that_cannot_fit_is_a_permanent_failure_that_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 32 priority domains of ~200 characters cannot be told in 4 KiB, whatever is trimmed.
    domains = [f"{LONG}-{LONG}-{LONG}-{i:02d}" for i in range(32)]
    records = [r | {"split": "dev"} for d in domains for r in domain_records(d, [0, 0])]
    baseline = _write(tmp_path / "results.json", results(records))
    summary_path = tmp_path / "termination-log"
    code = _run(
        [
            "analyze",
            "--baseline", str(baseline),
            "--output", str(tmp_path / "out"),
            "--max-domains", "32",
            "--threshold", "0.9",
        ],
        summary_path,
        monkeypatch,
    )  # fmt: skip
    # Exit 3: the Job's podFailurePolicy fails it at once, the engine never relaunches it.
    assert code == EXIT_CONFIG_ERROR
    summary = parse_summary(summary_path.read_bytes())
    assert (summary.ok, summary.reason) == (False, "SummaryTooLarge")
    assert "plan.priorityDomains" in summary.message and "4096" in summary.message
    assert not (tmp_path / "out" / "summary.json").exists()


def test_fit_summary_keeps_the_weakest_and_records_each_cut() -> None:
    deltas = {f"{LONG}-{i:03d}": -i / 1000 for i in range(100)}
    summary = StepSummary(
        step="validate",
        ok=True,
        message="x" * 5000,
        validation=ValidationDigest(
            verdict="Reject",
            overall_delta=-0.1,
            p_value=0.01,
            domain_deltas=deltas,
            reasons=["r" * 2000],
        ),
    )
    fitted = fit_summary(summary)
    assert len(json.dumps(fitted.to_wire(), separators=(",", ":"))) <= SUMMARY_MAX_BYTES
    assert fitted.validation is not None
    kept = fitted.validation.domain_deltas
    assert min(deltas.values()) in kept.values()  # the worst regression survives
    assert max(kept.values()) <= sorted(deltas.values())[len(kept) - 1]
    assert fitted.trimmed["validation.domainDeltas"] == 100 - len(kept)
    assert len(fitted.message) <= 300 and len(fitted.validation.reasons[0]) <= 300
    # A summary that fits is returned as it is.
    small = StepSummary(step="s", ok=True, adapter=AdapterDigest(domain="d", path="/p"))
    assert fit_summary(small) is small


def test_fit_summary_never_cuts_the_priority_domains() -> None:
    summary = StepSummary(
        step="analyze", ok=True, plan=PlanDigest(priority_domains=["d" * 300] * 20)
    )
    with pytest.raises(SummaryTooLarge, match=r"plan\.priorityDomains"):
        fit_summary(summary)
