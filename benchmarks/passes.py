"""How many passes over its training set an adapter needs, measured on dev items.

Trains one adapter per domain (the demo suite's invented worlds by default, the domains a
cycle trains) with synthesis on, for `--max-passes` passes over its own training set, keeping
the adapter every `--checkpoint-every` steps; then scores the adapters at 1, 2, 3, 4, 6, 8, …
passes on the suite's **dev** items (never the test items the validation gate reads), and
prints each one's dev score by domain beside the training loss of that pass. The learning
rate is constant, so the adapter at step s of a long run is the adapter a run of s steps makes.

This is the measurement behind the passes rule of per-domain settings
(docs/training-data.md, "Per-domain settings").

    python benchmarks/passes.py --out artifacts/passes [--domains zephyria meridian_lark]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

from kaizen.api.args import EvaluateArgs, StepArgs
from kaizen.api.args_training import TrainArgs
from kaizen.api.artifacts import DataCard, EvaluationResults, read_artifact
from kaizen.local.executor import run_step_process

#: Files of a checkpoint that make an adapter (its optimiser state is not kept).
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def run(args: StepArgs, out: Path) -> None:
    outcome = run_step_process(args.command(), out / ".summaries" / f"{args.step}.json")
    if outcome.exit_code != 0 or outcome.summary is None or not outcome.summary.ok:
        reason = outcome.summary.message if outcome.summary else outcome.message
        raise SystemExit(f"{args.step} failed: {reason}")


class Keeper(threading.Thread):
    """Copies each checkpoint's adapter as it appears (the trainer keeps only the newest)."""

    def __init__(self, checkpoints: Path, kept: Path) -> None:
        super().__init__(daemon=True)
        self.checkpoints, self.kept = checkpoints, kept
        self.done = threading.Event()

    def sweep(self) -> None:
        for folder in sorted(self.checkpoints.glob("step-*")):
            target = self.kept / folder.name
            if target.exists() or not (folder / "state.json").exists():
                continue
            tmp = self.kept / f".{folder.name}"
            try:
                tmp.mkdir(parents=True, exist_ok=True)
                for name in ADAPTER_FILES:
                    shutil.copy(folder / name, tmp / name)
                tmp.rename(target)
            except FileNotFoundError:  # replaced by the next checkpoint while copying
                shutil.rmtree(tmp, ignore_errors=True)

    def run(self) -> None:
        while not self.done.wait(0.05):
            self.sweep()
        self.sweep()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="bundled:smollm2-135m-instruct")
    parser.add_argument("--suite", default="demo")
    parser.add_argument("--domains", nargs="+", default=["zephyria", "meridian_lark"])
    parser.add_argument("--out", type=Path, default=Path("artifacts/passes"))
    parser.add_argument("--max-passes", type=int, default=8)
    parser.add_argument("--checkpoint-every", type=int, default=5)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--synthesis-examples", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)
    out = options.out.resolve()
    common: dict[str, Any] = {"tracking_mode": "disabled", "quiet": True, "cycle": "passes"}
    evaluate = {"model": options.model, "suite": options.suite, "split": "dev", **common}
    report: dict[str, Any] = {"settings": vars(options) | {"out": str(out)}, "domains": {}}
    run(EvaluateArgs(output=str(out / "evaluate-base"), step="evaluate-base", **evaluate), out)
    base = read_artifact(out / "evaluate-base" / "results.json", EvaluationResults)
    report["base"] = by_domain(base)
    print("base (dev):", fmt(report["base"]), flush=True)
    for domain in options.domains:
        train_dir, kept = out / f"train-{domain}", out / f"kept-{domain}"
        # The set's size is known once the step has built it: a first run of 1 step writes
        # the data card, and the real run trains max_passes passes over the same set.
        probe = train_args(options, train_dir, domain, steps=1, common=common)
        run(probe, out)
        lines = read_artifact(train_dir / "data_card.json", DataCard).total
        per_pass = lines / options.batch_size
        steps = math.ceil(options.max_passes * per_pass)
        shutil.rmtree(train_dir)
        keeper = Keeper(train_dir / "checkpoints", kept)
        keeper.start()
        run(train_args(options, train_dir, domain, steps=steps, common=common), out)
        keeper.done.set()
        keeper.join()
        training = json.loads((train_dir / "training.json").read_text())
        losses = training["loss_curve"]
        rows: dict[str, Any] = {"lines": lines, "steps_per_pass": per_pass, "passes": {}}
        for passes in pass_points(options.max_passes):
            # the kept adapter nearest to `passes` passes (the last one is the final adapter)
            saved = {int(p.name.split("-")[1]): p for p in kept.glob("step-*")}
            saved[steps] = train_dir / "adapter"
            step = min(saved, key=lambda s: (abs(s - passes * per_pass), s))
            adapter = saved[step]
            name = f"evaluate-{domain}-p{passes}"
            run(
                EvaluateArgs(
                    output=str(out / name), step=name, adapters=[str(adapter)], **evaluate
                ),
                out,
            )
            scores = by_domain(read_artifact(out / name / "results.json", EvaluationResults))
            first = max(0, round((passes - 1) * per_pass))
            window = losses[first:step] or losses[-1:]
            rows["passes"][passes] = {
                "step": step,
                "dev": scores,
                "loss_last_pass": sum(window) / len(window),
            }
            print(
                f"{domain} {passes} passes (step {step}, {lines} lines): "
                f"loss {rows['passes'][passes]['loss_last_pass']:.3f}; dev {fmt(scores)}",
                flush=True,
            )
        report["domains"][domain] = rows
        (out / "passes.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


def train_args(
    options: argparse.Namespace, output: Path, domain: str, steps: int, common: dict[str, Any]
) -> TrainArgs:
    return TrainArgs(
        output=str(output),
        step=f"train-{domain}",
        model=options.model,
        suite=options.suite,
        domain=domain,
        steps=steps,
        learning_rate=options.learning_rate,
        lr_schedule="constant",  # step s of the long run is then a run of s steps
        batch_size=options.batch_size,
        seed=options.seed,
        synthesis_examples=options.synthesis_examples,
        checkpoint_every=options.checkpoint_every,
        **common,
    )


def pass_points(most: int) -> list[int]:
    return [p for p in (1, 2, 3, 4, 6, 8, 12, 16) if p < most] + [most]


def by_domain(results: EvaluationResults) -> dict[str, float]:
    totals: dict[str, list[float]] = {}
    for item in results.items:
        totals.setdefault(item.domain, []).append(item.score)
    return {d: sum(s) / len(s) for d, s in totals.items()}


def fmt(scores: dict[str, float]) -> str:
    return ", ".join(f"{d} {s:.0%}" for d, s in scores.items())


if __name__ == "__main__":
    sys.exit(main())
