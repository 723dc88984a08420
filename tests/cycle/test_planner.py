"""Every step's command line, as the planner writes it, parses back to the same typed arguments.

The engine is driven through whole cycles (each sample manifest, and specs that set every
optional argument); each invocation's argv is parsed by the step program's own parser and
must give exactly the model the step table built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kaizen.api import fields, parse_spec
from kaizen.api.args import (
    EVALUATOR,
    TRAINER,
    AnalyzeArgs,
    EvaluateArgs,
    InferenceArgs,
    ModelArgs,
    StepArgs,
    ValidateArgs,
    parse_step_argv,
)
from kaizen.api.args_combination import CombineArgs, JointArgs, MergeArgs
from kaizen.api.args_training import LoraTrainingArgs, TrainArgs
from kaizen.api.commands import EVALUATOR_COMMANDS, TRAINER_COMMANDS
from kaizen.api.spec import ImprovementCycleSpec
from kaizen.cycle import StepObservation, reconcile
from kaizen.cycle.catalog import STEP_KINDS, kind_of
from kaizen.cycle.planner import StepPlanner
from kaizen.cycle.types import StepInvocation
from tests.cycle.test_engine import ROOT, make_cycle, ok_summary

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "manifests" / "samples").glob("*.yaml"))

FULL_SPEC: dict[str, Any] = {
    "model": {"name": "org/model", "revision": "v2", "adapters": ["/pvc/a1", "/pvc/a2"]},
    "evaluation": {
        "suite": "/suites/mine",
        "maxNewTokens": 48,
        "batchSize": 7,
        "limit": 3,
        "domains": ["zephyria", "geography"],
        "lmEvalTasks": ["arc_easy", "/tasks/my task.yaml"],
        "attention": "eager",
        "precision": "fp32",
        "deviceMap": "auto",
        "maxGpuMemory": "70Gi",
    },
    "analysis": {"maxPriorityDomains": 3, "scoreThreshold": 0.55, "deferDomains": ["quarry"]},
    "training": {
        "rank": 4,
        "alpha": 32,
        "dropout": 0.1,
        "targetModules": ["q_proj", "v_proj"],
        "learningRate": 2e-4,
        "lrSchedule": "cosine",
        "warmupRatio": 0.1,
        "emaDecay": 0.9,
        "steps": 12,
        "batchSize": 2,
        "maxSeqLength": 256,
        "seed": 9,
        "replayFraction": 0.25,
        "extraData": "/pvc/extra.jsonl",
        "precision": "bf16",
        "gradientCheckpointing": True,
        "quantization": "4bit",
        "teacher": {
            "mode": "context",
            "model": "org/teacher",
            "share": 0.5,
            "paraphrases": 2,
            "tokenLevel": {"weight": 0.25, "topK": 8, "temperature": 2.0},
        },
    },
    "merge": {
        "combination": "auto",
        "candidates": ["dare_ties", "joint", "svd"],
        "minRetention": 0.8,
        "density": 0.3,
        "search": {"densities": [0.9], "weights": ["1/n"]},
        "seed": 4,
    },
    "validation": {
        "minImprovement": 0.02,
        "maxRegression": 0.2,
        "significance": 0.01,
        "requireSignificance": False,
        "power": 0.9,
        "targetImprovement": 0.03,
        "maxSlowdown": 0.25,
        "maxMemoryIncrease": 0.1,
        "lmEval": {"maxDrop": 0.02, "minScores": {"arc_easy": 0.4, "hellaswag": 0.3}},
        "reference": {"results": "/artifacts/ml/v3/evaluate-candidate/results.json", "name": "v3"},
    },
    "tracking": {"mode": "online", "project": "p", "entity": "team"},
}


def _program_parse(invocation: StepInvocation) -> StepArgs:
    python, dash_m, program, *argv = invocation.argv
    assert (python, dash_m) == ("python", "-m")
    kinds = EVALUATOR_COMMANDS if program == EVALUATOR else TRAINER_COMMANDS
    assert program in (EVALUATOR, TRAINER)
    assert invocation.kind == ("evaluator" if program == EVALUATOR else "trainer")
    return parse_step_argv(argv, kinds, prog=program)


def _every_invocation(spec: dict[str, Any]) -> list[StepInvocation]:
    """Drive the engine through a whole promoted cycle and collect every launch."""
    cycle = make_cycle(spec)
    seen: list[StepInvocation] = []
    observations: dict[str, StepObservation] = {}
    for _ in range(20):
        decision = reconcile(cycle, observations, artifact_root=ROOT, now="2026-12-04T00:00:00Z")
        cycle = cycle.model_copy(update={"status": decision.status})
        if decision.finished:
            return seen
        seen += decision.start
        observations = {
            i.name: StepObservation(i.name, "Succeeded", exit_code=0, summary=ok_summary(i.name))
            for i in decision.start
        }
    raise AssertionError("the cycle did not finish")


_CYCLE_SAMPLES = {
    p.stem: next(
        (d for d in yaml.safe_load_all(p.read_text()) if d and d.get("kind") == "ImprovementCycle"),
        None,
    )
    for p in SAMPLES
}
SPECS = [pytest.param(FULL_SPEC, id="every-option"), pytest.param({}, id="defaults")] + [
    pytest.param(sample["spec"], id=stem)
    for stem, sample in _CYCLE_SAMPLES.items()
    if sample is not None
]


@pytest.mark.parametrize("spec", SPECS)
def test_every_step_argv_parses_back_to_the_model_the_table_built(spec: dict[str, Any]) -> None:
    invocations = _every_invocation(spec)
    names = [i.name for i in invocations]
    assert names[:2] == ["evaluate-baseline", "analyze"]
    assert names[-3:] == ["combine", "evaluate-candidate", "validate"]
    kinds = {kind_of(n).name for n in names}
    # The joint adapter is trained only when a cycle tries it; every other kind always runs.
    assert kinds | {"joint"} == {k.name for k in STEP_KINDS}
    assert ("joint" in kinds) == (spec is FULL_SPEC)
    for invocation in invocations:
        parsed = _program_parse(invocation)
        assert parsed.step == invocation.name
        assert parsed.output == invocation.artifacts_dir
        # Rendering the parsed model again gives the same command line: nothing is lost.
        assert tuple(parsed.command()) == invocation.argv


@pytest.mark.parametrize("spec", SPECS)
def test_every_step_that_generates_loads_the_model_as_the_spec_says(spec: dict[str, Any]) -> None:
    """Evaluations, `score-<domain>` and combine compare scores with one another: each loads
    the model with the spec's attention, precision and placement (a model sharded for the
    evaluations is sharded for combine too), as its command line says."""
    evaluation = parse_spec(spec).evaluation
    expected = {
        "attention": evaluation.attention,
        "precision": evaluation.precision,
        "device_map": evaluation.device_map,
        "max_gpu_memory": evaluation.max_gpu_memory,
    }
    assert set(expected) == InferenceArgs.model_fields.keys() - ModelArgs.model_fields.keys()
    generating = set()
    for invocation in _every_invocation(spec):
        parsed = _program_parse(invocation)
        if isinstance(parsed, InferenceArgs):
            generating.add(kind_of(invocation.name).name)
            assert parsed.model_dump(include=set(expected)) == expected, invocation.name
    assert {"evaluate-baseline", "score", "combine", "evaluate-candidate"} <= generating


def _with_joint(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` with `joint` among the combinations tried (and two domains to join)."""
    merge = {**spec.get("merge", {}), "combination": "auto"}
    candidates = merge.get("candidates") or ["ties"]
    merge["candidates"] = list(dict.fromkeys([*candidates, "joint"]))
    analysis = {**spec.get("analysis", {}), "maxPriorityDomains": 2}
    return {**spec, "merge": merge, "analysis": analysis}


#: Every training option the teacher of FULL_SPEC excludes: packing, FSDP (a 70B model's; an
#: average of the weights is kept unsharded only).
TRAINING_SPEC: dict[str, Any] = {
    **FULL_SPEC,
    "training": {
        **{
            k: v
            for k, v in FULL_SPEC["training"].items()
            if k not in ("teacher", "quantization", "emaDecay")
        },
        "packing": True,
        "parallelism": "fsdp",
    },
}

#: The options every step that trains takes alike (the `LoraTrainingArgs` of train and joint).
TRAINING_OPTIONS = (
    set(LoraTrainingArgs.model_fields) - set(ModelArgs.model_fields) - {"steps", "learning_rate"}
)


@pytest.mark.parametrize("spec", [*SPECS, pytest.param(TRAINING_SPEC, id="every-training-option")])
def test_the_joint_step_trains_with_the_train_steps_options(spec: dict[str, Any]) -> None:
    """With `joint` among the candidates, the joint step's argv carries every training option
    of the spec (precision, gradient checkpointing, packing, quantization, parallelism, the
    LoRA shape, …) exactly as the train steps' do, and parses back to what the table built."""
    spec = _with_joint(spec)
    training = parse_spec(spec).training
    invocations = {i.name: i for i in _every_invocation(spec)}
    parsed = {name: _program_parse(i) for name, i in invocations.items()}
    joint = parsed["joint"]
    assert isinstance(joint, JointArgs)
    assert tuple(joint.command()) == invocations["joint"].argv
    trains = [a for a in parsed.values() if isinstance(a, TrainArgs)]
    assert len(trains) == len(joint.data) == 2
    for train in trains:
        assert joint.model_dump(include=TRAINING_OPTIONS) == train.model_dump(
            include=TRAINING_OPTIONS
        )
        assert (joint.model, joint.revision, joint.adapters) == (
            train.model,
            train.revision,
            train.adapters,
        )
    assert {
        "precision": joint.precision,
        "gradient_checkpointing": joint.gradient_checkpointing,
        "packing": joint.packing,
        "quantization": joint.quantization,
        "parallelism": joint.parallelism,
        "target_modules": joint.target_modules,
        "max_seq_length": joint.max_seq_length,
        "batch_size": joint.batch_size,
    } == {
        "precision": training.precision,
        "gradient_checkpointing": training.gradient_checkpointing,
        "packing": training.packing,
        "quantization": training.quantization,
        "parallelism": training.parallelism,
        "target_modules": list(training.target_modules),
        "max_seq_length": training.max_seq_length,
        "batch_size": training.batch_size,
    }
    assert joint.learning_rate == training.learning_rate
    assert joint.steps == sum(t.steps for t in trains)


def test_the_every_option_specs_set_every_training_option_off_its_default() -> None:
    # So that the test above sees each option travel, not a default that happens to match.
    defaults = JointArgs(output="/o", model="m", data=["a=/a"]).model_dump(include=TRAINING_OPTIONS)
    unchanged = set(defaults)
    for spec in (FULL_SPEC, TRAINING_SPEC):
        joint = next(
            _program_parse(i) for i in _every_invocation(_with_joint(spec)) if i.name == "joint"
        )
        changed = joint.model_dump(include=TRAINING_OPTIONS)
        unchanged &= {k for k in defaults if defaults[k] == changed[k]}
    # Neither has a spec field: the train steps use the programs' defaults too.
    assert unchanged == {"checkpoint_every", "max_grad_norm"}


def test_the_spec_reaches_every_argument() -> None:
    by_name = {i.name: _program_parse(i) for i in _every_invocation(FULL_SPEC)}
    evaluate = by_name["evaluate-baseline"]
    assert isinstance(evaluate, EvaluateArgs)
    assert evaluate.model == "org/model" and evaluate.revision == "v2"
    assert evaluate.adapters == ["/pvc/a1", "/pvc/a2"]
    assert (evaluate.max_new_tokens, evaluate.batch_size, evaluate.limit) == (48, 7, 3)
    assert evaluate.domains == ["zephyria", "geography"]
    assert evaluate.lm_eval_tasks == ["arc_easy", "/tasks/my task.yaml"]
    assert (evaluate.tracking_mode, evaluate.tracking_project) == ("online", "p")
    assert evaluate.tracking_entity == "team" and evaluate.cycle == "demo"
    candidate = by_name["evaluate-candidate"]
    assert isinstance(candidate, EvaluateArgs)
    assert candidate.adapters == ["/pvc/a1", "/pvc/a2", f"{ROOT}/ml/demo/combine/adapter"]
    analyze = by_name["analyze"]
    assert isinstance(analyze, AnalyzeArgs)
    assert (analyze.max_domains, analyze.threshold, analyze.defer) == (3, 0.55, ["quarry"])
    argv = analyze.to_argv()
    assert argv[argv.index("--defer") + 1] == "quarry"
    assert AnalyzeArgs.from_argv(argv) == analyze
    assert analyze.baseline == f"{ROOT}/ml/demo/evaluate-baseline/results.json"
    train = by_name["train-zephyria"]
    assert isinstance(train, TrainArgs)
    assert train.model_dump(include={"rank", "alpha", "dropout", "target_modules"}) == {
        "rank": 4, "alpha": 32, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"],
    }  # fmt: skip
    # The plan scored zephyria 0 and geography 0.275 on their dev items (threshold 0.55):
    # zephyria weighs 1.5, geography 1, and together they keep 12 steps on average.
    assert (train.learning_rate, train.steps, train.batch_size) == (2e-4, 14, 2)
    assert by_name["train-geography"].steps == 10  # type: ignore[union-attr]
    assert (train.max_seq_length, train.seed, train.replay_fraction) == (256, 9, 0.25)
    assert train.ema_decay == 0.9
    assert train.extra_data == "/pvc/extra.jsonl" and train.suite == "/suites/mine"
    assert train.plan == f"{ROOT}/ml/demo/analyze/plan.json"
    assert (train.teacher, train.teacher_model, train.teacher_share) == (
        "context",
        "org/teacher",
        0.5,
    )
    assert train.teacher_paraphrases == 2
    assert (train.distill_weight, train.distill_top_k, train.distill_temperature) == (0.25, 8, 2.0)
    merge = by_name["merge"]
    assert isinstance(merge, MergeArgs)
    assert merge.source_pairs() == [
        ("zephyria", f"{ROOT}/ml/demo/train-zephyria/adapter"),
        ("geography", f"{ROOT}/ml/demo/train-geography/adapter"),
    ]
    assert (merge.combination, merge.density, merge.seed) == ("dare_ties", 0.3, 4)
    assert merge.candidates == ["svd"]
    assert (merge.search_densities, merge.search_weights) == ([0.9], ["1/n"])
    joint = by_name["joint"]
    assert isinstance(joint, JointArgs)
    assert joint.data_pairs() == [
        ("zephyria", f"{ROOT}/ml/demo/train-zephyria/data.jsonl"),
        ("geography", f"{ROOT}/ml/demo/train-geography/data.jsonl"),
    ]
    # As many updates as the two domain adapters together.
    trains = [by_name["train-zephyria"], by_name["train-geography"]]
    assert joint.steps == sum(t.steps for t in trains)  # type: ignore[attr-defined]
    combine = by_name["combine"]
    assert isinstance(combine, CombineArgs)
    # Each merge method's grid points (merge.search) follow its plain one; `svd` prunes
    # nothing, so it has no density points.
    candidates = f"{ROOT}/ml/demo/merge/candidates"
    assert combine.candidate_pairs() == [
        ("dare_ties", f"{ROOT}/ml/demo/merge/adapter"),
        ("dare_ties-winvn", f"{candidates}/dare_ties-winvn/adapter"),
        ("dare_ties-d0.9", f"{candidates}/dare_ties-d0.9/adapter"),
        ("dare_ties-d0.9-winvn", f"{candidates}/dare_ties-d0.9-winvn/adapter"),
        ("joint", f"{ROOT}/ml/demo/joint/adapter"),
        ("svd", f"{candidates}/svd/adapter"),
        ("svd-winvn", f"{candidates}/svd-winvn/adapter"),
    ]
    assert combine.merge_record == f"{ROOT}/ml/demo/merge/merge.json"
    assert combine.min_retention == 0.8
    assert combine.alone_pairs() == [
        ("zephyria", f"{ROOT}/ml/demo/score-zephyria/results.json"),
        ("geography", f"{ROOT}/ml/demo/score-geography/results.json"),
    ]
    validate = by_name["validate"]
    assert isinstance(validate, ValidateArgs)
    assert (validate.min_improvement, validate.max_regression) == (0.02, 0.2)
    assert validate.significance == 0.01 and validate.require_significance is False


def test_spec_defaults_and_step_program_defaults_are_one_value() -> None:
    """A step run by hand, without the planner, behaves like one the spec's defaults built."""
    spec = ImprovementCycleSpec()
    planner = StepPlanner(spec, namespace="ns", cycle="c", artifact_root="/r")
    built = planner.train_args("geography", "/r/plan.json")
    minimal = TrainArgs(
        output=built.output,
        step=built.step,
        cycle="c",
        model=spec.model.name,
        suite=spec.evaluation.suite,
        domain="geography",
        plan="/r/plan.json",
    )
    assert minimal == built
    assert (
        minimal.replay_fraction == spec.training.replay_fraction == fields.DEFAULT_REPLAY_FRACTION
    )
    evaluate = planner.evaluate_args("evaluate-baseline")
    assert evaluate == EvaluateArgs(
        output=evaluate.output, step=evaluate.step, cycle="c", model=spec.model.name, suite="demo"
    )
    assert planner.analyze_args("/b") == AnalyzeArgs(
        output=planner.dir("analyze"), step="analyze", cycle="c", baseline="/b"
    )
    assert planner.validate_args("/b", "/c") == ValidateArgs(
        output=planner.dir("validate"),
        step="validate",
        cycle="c",
        baseline="/b",
        candidate="/c",
        html_report=planner.report_dir(),
        combination=planner.dir("combine") + "/combination.json",
    )
    # The combine step's digest names its file; the planner then passes that one.
    assert planner.validate_args("/b", "/c", "/x/combination.json").combination == (
        "/x/combination.json"
    )


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ({}, {"a": 30, "b": 30}),
        ({"a": 0.0, "b": 0.0}, {"a": 30, "b": 30}),
        ({"a": 0.0, "b": 0.6}, {"a": 42, "b": 18}),  # weights 1.5 and 0.64
        ({"a": 0.0, "b": 0.69}, {"a": 45, "b": 15}),  # 1.5 and 0.51
        ({"a": 0.35}, {"a": 30, "b": 30}),
    ],
)
def test_weaker_domains_train_longer_at_the_same_mean(scores, expected) -> None:
    from kaizen.cycle.planner import domain_steps

    got = {d: domain_steps(30, d, scores, ["a", "b"], 0.7) for d in ("a", "b")}
    assert got == expected


@pytest.mark.parametrize(
    ("teacher", "expected"),
    [
        ({}, (0.0, fields.DEFAULT_DISTILL_TOP_K, fields.DEFAULT_DISTILL_TEMPERATURE)),
        (
            {"tokenLevel": {}},
            (
                fields.DEFAULT_DISTILL_WEIGHT,
                fields.DEFAULT_DISTILL_TOP_K,
                fields.DEFAULT_DISTILL_TEMPERATURE,
            ),
        ),
        ({"tokenLevel": {"weight": 0, "topK": 4}}, (0.0, 4, 1.0)),
    ],
)
def test_token_level_distillation_is_off_unless_asked_for(teacher, expected) -> None:
    spec = ImprovementCycleSpec.model_validate({"training": {"teacher": teacher}})
    planner = StepPlanner(spec, namespace="ns", cycle="c", artifact_root="/r")
    args = planner.train_args("a", None)
    assert (args.distill_weight, args.distill_top_k, args.distill_temperature) == expected


@pytest.mark.parametrize(
    ("merge", "domains", "expected"),
    [
        # auto: each method at its plain point, then merge.search's (default: density 1.0
        # for the pruning methods, weight 1/n for all).
        (
            {"combination": "auto", "candidates": ["ties", "linear", "joint"]},
            2,
            ["ties", "ties-winvn", "ties-d1", "ties-d1-winvn", "linear", "linear-winvn"],
        ),
        ({"combination": "auto", "candidates": ["cat"], "search": {"weights": []}}, 3, ["cat"]),
        # A fixed combination searches nothing; one domain's adapter is copied, once.
        ({"combination": "dare_ties", "search": {"weights": ["1/n"]}}, 2, ["dare_ties"]),
        ({"combination": "auto", "candidates": ["ties", "cat"]}, 1, ["ties"]),
    ],
)
def test_the_merge_step_makes_the_grid_only_under_auto(
    merge: dict[str, Any], domains: int, expected: list[str]
) -> None:
    spec = ImprovementCycleSpec.model_validate({"merge": merge})
    planner = StepPlanner(spec, namespace="ns", cycle="c", artifact_root="/r")
    assert [p.name for p in planner.merge_points(domains)] == expected
    sources = [(f"d{i}", f"/a/d{i}") for i in range(domains)]
    assert [p.name for p in planner.merge_args(sources).points()][: len(expected)] == expected


def test_a_domain_override_wins_over_the_rule() -> None:
    spec = ImprovementCycleSpec.model_validate(
        {"training": {"steps": 20, "domains": {"a": {"steps": 7, "learningRate": 0.01}}}}
    )
    planner = StepPlanner(spec, namespace="ns", cycle="c", artifact_root="/r")
    scores = {"a": 0.0, "b": 0.5}
    assert planner.domain_settings("a", scores, ["a", "b"]) == (7, 0.01)
    assert planner.domain_settings("b", scores, ["a", "b"])[1] == spec.training.learning_rate
    args = planner.train_args("a", None, scores, ["a", "b"])
    assert (args.steps, args.learning_rate) == (7, 0.01)


@pytest.mark.parametrize(
    ("passes", "scores", "expected"),
    [
        (4.0, {}, {"a": 4.0, "b": 4.0}),  # no scores: every factor 1
        (4.0, {"a": 0.0, "b": 0.0}, {"a": 4.0, "b": 4.0}),
        (4.0, {"a": 0.0, "b": 0.6}, {"a": 5.6, "b": 2.4}),  # weights 1.5 and 0.64
        (6.0, {"a": 0.0, "b": 0.69}, {"a": 8.94, "b": 3.06}),  # 1.5 and 0.514
        (1.0, {"a": 0.35}, {"a": 1.0, "b": 1.0}),  # b unscored weighs 1, a at half: 1
    ],
)
def test_passes_follow_the_difficulty_factor_at_the_same_mean(passes, scores, expected) -> None:
    spec = ImprovementCycleSpec.model_validate(
        {"analysis": {"scoreThreshold": 0.7}, "training": {"passes": passes}}
    )
    planner = StepPlanner(spec, namespace="ns", cycle="c", artifact_root="/r")
    got = {d: planner.train_args(d, None, scores, ["a", "b"]).passes for d in ("a", "b")}
    assert got == expected
    assert sum(got.values()) / 2 == pytest.approx(passes, abs=0.01)
    assert (
        planner.train_args("a", None, scores, ["a", "b"]).max_steps
        == fields.DEFAULT_MAX_TRAIN_STEPS
    )


@pytest.mark.parametrize(
    ("training", "expected"),
    [
        ({"steps": 20}, {"a": None, "b": None}),  # no passes: the fixed steps rule
        ({"passes": 3, "maxSteps": 50}, {"a": 3.0, "b": 3.0}),
        ({"passes": 3, "minSteps": 50, "maxSteps": 50}, {"a": 3.0, "b": 3.0}),
        # a domain's steps win over any passes; its passes over the spec's
        ({"passes": 3, "domains": {"a": {"steps": 7}}}, {"a": None, "b": 3.0}),
        ({"passes": 3, "domains": {"a": {"passes": 8}}}, {"a": 8.0, "b": 3.0}),
        ({"domains": {"a": {"passes": 2.5}}}, {"a": 2.5, "b": None}),
    ],
)
def test_a_domain_override_of_passes_or_steps_wins(training, expected) -> None:
    spec = ImprovementCycleSpec.model_validate({"training": training})
    planner = StepPlanner(spec, namespace="ns", cycle="c", artifact_root="/r")
    args = {d: planner.train_args(d, None, {}, ["a", "b"]) for d in ("a", "b")}
    assert {d: a.passes for d, a in args.items()} == expected
    assert all(a.max_steps == spec.training.max_steps for a in args.values())
    assert all(a.min_steps == spec.training.min_steps for a in args.values())
    if training.get("domains", {}).get("a", {}).get("steps"):
        assert args["a"].steps == 7


def test_the_joint_step_takes_as_many_steps_as_the_train_steps_reported() -> None:
    spec = ImprovementCycleSpec.model_validate({"training": {"steps": 20, "passes": 4}})
    planner = StepPlanner(spec, namespace="ns", cycle="c", artifact_root="/r")
    # under the passes rule only the train steps knew their steps
    assert planner.joint_args(["a", "b"], {}, {"a": 63, "b": 41}).steps == 104
    # a domain that reported none counts its planned steps
    assert planner.joint_args(["a", "b"], {}, {"a": 63}).steps == 83
    assert planner.joint_args(["a", "b"]).steps == 40


def test_passes_and_max_steps_are_validated_with_the_field_named() -> None:
    from pydantic import ValidationError

    for training in (
        {"passes": 0},
        {"passes": -1},
        {"maxSteps": 0},
        {"domains": {"a": {"passes": 0}}},
    ):
        with pytest.raises(ValidationError, match="passes|maxSteps|max_steps"):
            ImprovementCycleSpec.model_validate({"training": training})


def test_min_steps_above_max_steps_is_refused_with_both_fields_named() -> None:
    from pydantic import ValidationError

    from kaizen.api.args_training import TrainArgs

    with pytest.raises(
        ValidationError, match=r"training.minSteps \(60\) must not exceed training.maxSteps \(50\)"
    ):
        ImprovementCycleSpec.model_validate({"training": {"minSteps": 60, "maxSteps": 50}})
    with pytest.raises(
        ValidationError, match=r"--min-steps \(60\) must not exceed --max-steps \(50\)"
    ):
        TrainArgs(
            output="/o",
            step="train-a",
            model="m",
            suite="s",
            domain="a",
            min_steps=60,
            max_steps=50,
        )
    assert (
        ImprovementCycleSpec.model_validate({"training": {}}).training.min_steps
        == fields.DEFAULT_MIN_TRAIN_STEPS
    )


@pytest.mark.parametrize(("similar", "flag"), [(None, False), (False, False), (True, True)])
def test_similar_routes_reach_the_merge_step_only_when_the_spec_asks(
    similar: bool | None, flag: bool
) -> None:
    merge: dict[str, Any] = {"combination": "auto", "candidates": ["ties", "routed"]}
    if similar is not None:
        merge["similarRoutes"] = similar
    spec = ImprovementCycleSpec.model_validate({"merge": merge})
    planner = StepPlanner(spec, namespace="ns", cycle="c", artifact_root="/r")
    args = planner.merge_args([("a", "/a/a"), ("b", "/a/b")])
    assert args.routed is True
    assert ("--similar" in args.to_argv()) is flag
