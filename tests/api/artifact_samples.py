"""One sample of every artifact file, as the step that writes it builds it.

`test_artifacts.py` round-trips each through its model; other tests lay out a cycle's folders
with them (`tests/report/cycle_dir.py`, `tests/trainer/test_lineage.py`).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from kaizen.api.artifacts import (
    CombinationReport,
    DataCard,
    EvaluationResults,
    ImprovementPlan,
    JointRecord,
    MergeRecord,
    RouteTable,
    StepProvenance,
    TrainingRecord,
    ValidationReport,
)
from kaizen.api.lineage import ChainLineage
from tests.evaluator.results_factory import domain_records, results

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "docs" / "schemas"
REGENERATE = "run `python -m kaizen.api.artifacts --schemas docs/schemas`"

SUITE = {"name": "demo", "version": "1", "digest": "sha256:abc", "path": "suites/demo"}
BASE = {"ref": "bundled:smollm2-135m-instruct", "revision": None, "adapters": []}
VERSIONS = {"torch": "2.5.0", "transformers": "4.46.0", "peft": "0.13.0"}


def _results() -> dict[str, Any]:
    return results(
        domain_records("geo", [1, 1, 0, 1], ["factual_recall", "multi_step"] * 2)
        + domain_records("zep", [0, 0, 1, 0])
    )


def _plan() -> dict[str, Any]:
    from kaizen.evaluator.analysis import build_plan

    plan = build_plan(_results(), threshold=0.7, max_domains=2)
    return plan | {"baseline": "/artifacts/ml/demo/evaluate-baseline/results.json"}


def _report() -> dict[str, Any]:
    """A report.json as validate writes it, with the retention of a combination.json."""
    from kaizen.evaluator.validate import Gates, compare, retention_record

    candidate = results(
        domain_records("geo", [1, 1, 1, 1], ["factual_recall", "multi_step"] * 2)
        + domain_records("zep", [1, 0, 1, 1])
    )
    combination = _combination()
    candidate["model"]["adapters"] = [combination["adapter"]]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "combination.json"
        path.write_text(json.dumps(combination | {"suite": candidate["suite"]}))
        retention = retention_record(path, candidate) | {"path": "/a/combine/combination.json"}
    return compare(
        _results(), candidate, Gates(), (Path("b.json"), Path("c.json")), retention=retention
    )


def _training() -> dict[str, Any]:
    """A training.json as `kaizen.trainer.programs.train` writes it."""
    return {
        "schema": 5,
        "step": "train-zep",
        "cycle": "demo",
        "domain": "zep",
        "suite": SUITE,
        "model": BASE,
        "config": {
            "rank": 8,
            "alpha": 16,
            "dropout": 0.0,
            "target_modules": ["all-linear"],
            "learning_rate": 0.001,
            "steps": 30,
            "batch_size": 8,
            "seed": 0,
            "max_grad_norm": 1.0,
            "ema_decay": 0.99,
            "checkpoint_every": 10,
            "max_seq_length": 128,
            "capability_weight": 2,
            "replay_fraction": 0.5,
            "replay_examples": 12,
            "anchor_ratio": 0.25,
            "preserve_weight": 1.0,
            "synthesis_examples": 96,
            "passes": 10.0,  # 30 steps: 10 passes over 24 lines, 8 a step
            "max_steps": 400,
            "min_steps": 20,
            "teacher": "context",
            "teacher_model": None,
            "teacher_share": 0.5,
            "distill_weight": 0.5,
            "distill_top_k": 16,
            "distill_temperature": 2.0,
            "group_by_length": True,
            "precision": "bf16",
            "gradient_checkpointing": True,
            "packing": True,
            "pack_length": 128,
            "lr_schedule": "linear",
            "warmup_ratio": 0.05,
            "quantization": "4bit",
            "parallelism": "ddp",
            "processes": 16,
        },
        "plan": {"path": "/artifacts/plan.json", "targeted_capabilities": ["multi_step"]},
        "examples": {
            "pool": 12,
            "extra": 0,
            "training_set": 24,
            "used": 24,
            "truncated": 1,
            "dropped_no_answer_tokens": 0,
            "answer_tokens": 300,
            "synthesized": 20,
            "teacher": 8,
            "contaminated": 1,
        },
        "steps": 30,
        "resumed_from": 0,
        "loss_curve": [2.5, 1.25, 0.5],
        "final_loss": 0.75,
        "train_seconds": 12.5,
        "seconds_per_step": 0.4167,
        "tokens_per_second": None,
        "peak_memory_mb": 812.5,
        "trainable_parameters": 1000,
        "total_parameters": 135_000_000,
        "device": "cpu",
        "autocast": None,
        "versions": VERSIONS,
        "adapter": "/artifacts/train-zep/adapter",
        "data_card": "/artifacts/train-zep/data_card.json",
        "distillation": {
            "teacher": "org/bigger",
            "positions": 300,
            "top_k_mass": 0.93,
            "teacher_seconds": 1.25,
            "kl_curve": [0.5, 0.25, 0.125],
            "final_kl": 0.2917,
        },
        "preservation": {
            "weight": 1.0,
            "examples": 12,
            "positions": 96,
            "top_k_mass": 0.88,
            "seconds": 0.5,
            "kl_curve": [0.5, 0.25, 0.125],
            "final_kl": 0.2917,
        },
    }


def _data_card() -> dict[str, Any]:
    """A data_card.json as `kaizen.trainer.programs.train` writes it."""
    line = {"source": "synthesis:chain", "capability": "cross_referencing"}
    return {
        "schema": 5,
        "step": "train-zep",
        "domain": "zep",
        "suite": SUITE,
        "seed": 0,
        "steps": 36,
        "passes": 7.2,  # 7.2 passes over 40 lines, 8 a step
        "learning_rate": 0.001,
        "total": 40,
        "by_source": {"pool": 12, "replay": 20, "synthesis:chain": 8},
        "by_capability": {"cross_referencing": 8, "factual_recall": 32},
        "by_domain": {"geo": 20, "zep": 20},
        "synthesis": {
            "budget": 8,
            "facts": 5,
            "passages": 0,
            "available": {"cross_referencing": 3},
            "chosen": {"cross_referencing": 3},
            "weights": {"cross_referencing": 2.0},
            "diagnosis": "reasoning",
            "targeted_capabilities": ["cross_referencing"],
            "failed_items": 2,
            "behind_failures": 1,
            "earlier_lines": 6,
            "repeated": 1,
        },
        "teacher": {
            "mode": "context",
            "model": None,
            "share": 1.0,
            "asked": 3,
            "accepted": 2,
            "paraphrases_asked": 4,
            "paraphrases_kept": 1,
        },
        "rehearsal": {
            "fraction": 0.5,
            "focus": 0.5,
            "knowledge": True,
            "resemblance": {"geo": 0.08},
            "shares": {"geo": 1.0},
            "anchor_ratio": 0.25,
            "anchors": 3,
            "anchors_asked": 4,
            "general": 0,
        },
        "dropped": [
            {
                "source": "teacher",
                "question": "Q?",
                "answer": "No.",
                "reason": "teacher answer does not state 'x'",
            },
            {
                "source": "pool",
                "question": "Q2?",
                "answer": "A.",
                "reason": "question repeats evaluation item 'zep-01'",
            },
        ],
        "examples": [{**line, "question": "Which river?", "answer": "The Lissel."}],
        "data": "/artifacts/train-zep/data.jsonl",
    }


def _merge() -> dict[str, Any]:
    """A merge.json as `kaizen.trainer.programs.merge` writes it."""
    source = {"rank": 8, "alpha": 16.0, "target_modules": ["q_proj", "v_proj"]}
    return {
        "schema": 2,
        "step": "merge",
        "cycle": None,
        "model": BASE,
        "config": {
            "combination": "ties",
            "density": 0.5,
            "seed": 0,
            "candidates": ["cat"],
            "search_densities": [1.0],
            "search_weights": ["n"],
        },
        "combination": "ties",
        "rank": 8,
        "sources": [
            {"domain": "geo", "path": "/a/geo", **source},
            {"domain": "zep", "path": "/a/zep", **source},
        ],
        "seconds": 1.5,
        "versions": VERSIONS,
        "adapter": "/artifacts/merge/adapter",
        "merges": [
            {
                "name": "ties",
                "method": "ties",
                "density": 0.5,
                "weight_rule": "one",
                "weight": 1.0,
                "rank": 8,
                "adapter": "/artifacts/merge/adapter",
                "seconds": 0.4,
            },
            {
                "name": "ties-d1-wn",
                "method": "ties",
                "density": 1.0,
                "weight_rule": "n",
                "weight": 2.0,
                "rank": 8,
                "seconds": 0.4,
                "adapter": "/artifacts/merge/candidates/ties-d1-wn/adapter",
            },
            {
                "name": "cat",
                "method": "cat",
                "density": None,
                "weight_rule": "one",
                "weight": 1.0,
                "rank": 16,
                "seconds": 0.3,
                "adapter": "/artifacts/merge/candidates/cat/adapter",
            },
        ],  # fmt: skip
    }


def _joint() -> dict[str, Any]:
    """A joint.json as `kaizen.trainer.joint.joint` writes it."""
    return {
        "schema": 2,
        "step": "joint",
        "cycle": "demo",
        "model": BASE,
        "sources": [
            {"domain": "geo", "path": "/a/train-geo/data.jsonl", "lines": 40, "kept": 40},
            {"domain": "zep", "path": "/a/train-zep/data.jsonl", "lines": 40, "kept": 31},
        ],
        "examples": 71,
        "truncated": 0,
        "steps": 20,
        "learning_rate": 0.001,
        "rank": 8,
        "final_loss": 0.42,
        "loss_curve": [2.0, 1.0, 0.42],
        "train_seconds": 12.5,
        "peak_memory_mb": 900.0,
        "adapter": "/a/joint/adapter",
        "config": {
            "rank": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"],
            "learning_rate": 0.001, "steps": 20, "batch_size": 8, "seed": 0,
            "max_grad_norm": 1.0, "checkpoint_every": 50, "max_seq_length": 256,
            "group_by_length": True, "precision": "bf16", "gradient_checkpointing": True,
            "packing": True, "pack_length": 256, "lr_schedule": "cosine",
            "warmup_ratio": 0.1, "quantization": "none", "parallelism": "fsdp", "processes": 8,
        },
        "resumed_from": 0,
        "tokens_per_second": 5120.0,
        "device": "cuda:0",
        "autocast": "bfloat16",
        "versions": {"torch": "2.9.0", "transformers": "4.57.0", "peft": "0.17.0"},
    }  # fmt: skip


def _combination() -> dict[str, Any]:
    """A combination.json as `kaizen.evaluator.combine.combine` writes it."""

    def row(
        name: str, place: int, zep: float, retention: float | None, merged: tuple[Any, ...]
    ) -> dict[str, Any]:
        method, density, weight, rule = merged
        return {
            "name": name,
            "method": method,
            "density": density,
            "weight": weight,
            "weight_rule": rule,
            "adapter": f"/a/{name}/adapter",
            "results": f"/a/combine/candidates/{name}/results.json",
            "domains": {"zep": zep, "geo": 0.5, "sci": 0.6},
            "trained": {
                "zep": {
                    "base": 0.0,
                    "alone": 0.8,
                    "combined": zep,
                    "retention": retention,
                    "items": 5,
                },
                "geo": {"base": 0.5, "alone": 0.5, "combined": 0.5, "retention": None, "items": 4},
            },  # fmt: skip
            "untrained_change": {"sci": -0.1},
            "untrained_p": {"sci": 0.5},
            "min_retention": retention,
            "mean_gain": round(zep / 2, 6),
            "worst_untrained_change": -0.1,
            "target_met": None if retention is None else retention >= 0.9,
            "tokens_per_second": 40.0,
            "peak_memory_mib": 1200.0,
            "seconds": 30.0,
            "rank": place,
        }

    return {
        "schema": 3,
        "step": "combine",
        "cycle": "demo",
        "suite": {"name": "demo", "version": "1", "digest": "sha256:" + "2" * 64, "path": "/s"},
        "split": "dev",
        "baseline": "/a/evaluate-baseline/results.json",
        "alone": {"zep": "/a/score-zep/results.json", "geo": "/a/score-geo/results.json"},
        "target": 0.9,
        "rule": "worst-domain retention, then mean gain",
        "chosen": "joint",
        "adapter": "/a/combine/adapter",
        "target_met": True,
        "candidates": [
            row("joint", 1, 0.8, 1.0, ("joint", None, None, None)),
            row("ties-wn", 2, 0.6, 0.75, ("ties", 0.5, 2.0, "n")),
            row("ties", 3, 0.4, 0.5, ("ties", 0.5, 1.0, "one")),
            {
                **row("routed", 4, 0.2, 0.25, ("routed", None, None, None)),
                "routing": {"own": {"geo": 1.0, "zep": 0.4}, "stray": {"sci": 0.0}},
            },
        ],
        "seconds": 61.0,
        "merge_seconds": 1.2,
        "max_untrained_drop": 0.15,
    }


def _routes() -> dict[str, Any]:
    """A routes.json as `kaizen.trainer.merge.write_routed` writes it."""
    return {
        "schema": 1,
        "step": "merge",
        "rule": "keys: the proper names of the domain's knowledge",
        "routes": [
            {"name": "zephyria", "adapter": "00-zephyria", "keys": ["Zephyria", "Port Ilvane"]},
            {"name": "meridian_lark", "adapter": "01-meridian_lark", "keys": ["Meridian Lark"]},
        ],
        "left_out": {"arithmetic": "its knowledge names nothing of its own to route by"},
        "fallback": "fallback",
        "fallback_from": "ties",
        "similar": {
            "file": "similar.safetensors",
            "model": "bundled:smollm2-135m-instruct",
            "layer": 26,
            "rule": "a prompt naming no key goes through the route of highest score",
            "thresholds": {"zephyria": 0.104, "meridian_lark": 0.04},
            "reach": {"zephyria": 0.857, "meridian_lark": 0.92},
            "background": 420,
        },
    }


def _provenance() -> dict[str, Any]:
    """A provenance.json as `kaizen.api.runner.run_step` writes it."""
    return {
        "schema": 1,
        "step": "analyze",
        "command": "analyze",
        "kaizen_version": "0.1.0",
        "args": {"baseline": "/a/evaluate-baseline/results.json", "max_domains": 3},
        "inputs": {"/a/evaluate-baseline/results.json": "sha256:" + "0" * 64},
        "digest": "sha256:" + "1" * 64,
    }


def _lineage() -> dict[str, Any]:
    """A lineage.json as a chain writes it: one promotion, one rejection, one failure."""
    entry = {
        "cycle": "nightly-1",
        "index": 1,
        "from_version": 0,
        "version": 1,
        "phase": "Succeeded",
        "verdict": "Promote",
        "reason": "Promoted",
        "promoted": True,
        "adapters": ["/a/nightly-1/merge/adapter"],
        "baseline": {"overall": 0.5, "domains": {"geo": 0.4, "zep": 0.6}, "test": 0.48},
        "candidate": {"overall": 0.6, "domains": {"geo": 0.6, "zep": 0.6}, "test": 0.56},
        "overall_delta": 0.1,
        "p_value": 0.004,
        "start_time": "2026-12-01T01:00:00Z",
        "completion_time": "2026-12-01T02:10:00Z",
        "message": "candidate promoted",
        "chain_generation": 1,
        "report_path": "/a/nightly-1/report/index.html",
    }
    rejected = {
        **entry,
        "cycle": "nightly-2",
        "index": 2,
        "from_version": 1,
        "verdict": "Reject",
        "reason": "Rejected",
        "promoted": False,
        "overall_delta": -0.02,
    }
    failed = {
        "cycle": "nightly-3",
        "index": 3,
        "from_version": 1,
        "version": 1,
        "phase": "Failed",
        "reason": "StepFailed",
        "promoted": False,
        "adapters": ["/a/nightly-1/merge/adapter"],
        "completion_time": "2026-12-03T01:20:00Z",
    }
    return {
        "schema": 2,
        "chain": "nightly",
        "namespace": "ml",
        "model": "bundled:smollm2-135m-instruct",
        "base_adapters": [],
        "suite": "demo",
        "version": 1,
        "adapters": ["/a/nightly-1/merge/adapter"],
        "entries": [entry, rejected, failed],
        "updated": "2026-12-03T01:20:05Z",
    }


SAMPLES = {
    ChainLineage: _lineage,
    StepProvenance: _provenance,
    EvaluationResults: _results,
    ImprovementPlan: _plan,
    ValidationReport: _report,
    TrainingRecord: _training,
    MergeRecord: _merge,
    DataCard: _data_card,
    JointRecord: _joint,
    CombinationReport: _combination,
    RouteTable: _routes,
}
