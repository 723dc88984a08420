"""lm-evaluation-harness tasks next to a Kaizen suite (the optional `kaizen[lmeval]` extra).

`run_lm_eval` runs lm-eval's Hugging Face backend on the model the evaluator already
loaded (no second copy, the same merged adapters), for task names from lm-eval's registry
or local task YAML files, and `fold_results` adds each task to results.json as a domain
named `lmeval:<task>` with its primary metric as the score and its item count as `n`.
The Kaizen suite's own overall scores are left as they are: a task's metric (accuracy,
exact match, perplexity …) is not an item score that could be averaged with the suite's.

Nothing here reaches a hub by itself: local tasks name a local dataset
(`dataset_path: json` with `data_files`), and a registry task needs its dataset in the
Hugging Face datasets cache when the machine is offline.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from kaizen.api.runner import ConfigurationError

if TYPE_CHECKING:  # pragma: no cover - torch and lm-eval are slow to import
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

#: Domains folded in from lm-eval are named `lmeval:<task>`.
DOMAIN_PREFIX = "lmeval:"
INSTALL_HINT = "pip install 'kaizen[lmeval]'"


class LmEvalUnavailable(ConfigurationError):
    """lm-eval tasks were asked for but the `lmeval` extra is not installed."""


@dataclass(frozen=True)
class TaskResult:
    """One lm-eval task's outcome, reduced to what a Kaizen report needs."""

    task: str
    metric: str
    """The task's primary metric (the first of its `metric_list`), e.g. `acc` or `exact_match`."""

    score: float
    n: int
    """Items the metric was computed on."""

    stderr: float | None = None
    """lm-eval's standard error of the metric, when it computed one."""

    metrics: dict[str, float] = field(default_factory=dict)
    """Every numeric metric lm-eval reported for the task, keyed `metric,filter`."""


@dataclass(frozen=True)
class TaskRefs:
    """Task names for lm-eval and the folders that hold the local task YAML among them."""

    names: list[str]
    include_paths: list[str]


def resolve_task_refs(refs: Sequence[str]) -> TaskRefs:
    """Split references into registry names and local YAML files (read for their `task` name).

    A reference ending in `.yaml`/`.yml` must be an existing file; its folder is added to
    lm-eval's include path, so `include:` of neighbouring YAML works as in lm-eval.
    """
    names: list[str] = []
    include_paths: list[str] = []
    for ref in refs:
        if not ref.strip():
            raise ConfigurationError("an lm-eval task reference is empty")
        if not ref.endswith((".yaml", ".yml")):
            names.append(ref)
            continue
        path = Path(ref)
        if not path.is_file():
            raise ConfigurationError(f"{ref}: lm-eval task file not found")
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise ConfigurationError(f"{ref}: not a readable task YAML ({error})") from error
        task = config.get("task") if isinstance(config, dict) else None
        if not isinstance(task, str) or not task:
            raise ConfigurationError(f"{ref}: task: missing (a task YAML names its task)")
        names.append(task)
        folder = str(path.resolve().parent)
        if folder not in include_paths:
            include_paths.append(folder)
    return TaskRefs(names=names, include_paths=include_paths)


def _local_count(refs: Sequence[str]) -> int:
    return sum(1 for ref in refs if ref.endswith((".yaml", ".yml")))


def check_available() -> None:
    """LmEvalUnavailable unless lm-eval and its HF backend import."""
    try:
        import lm_eval.models.huggingface  # noqa: F401
    except ImportError as error:
        raise LmEvalUnavailable(
            f"lm-eval tasks need lm-evaluation-harness ({INSTALL_HINT}): {error}"
        ) from error


def hf_lm(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch_size: int) -> Any:
    """lm-eval's HF backend wrapped around an already loaded model and tokenizer."""
    check_available()
    from lm_eval.models.huggingface import HFLM

    # HFLM warns that a pre-built model ignores some arguments: that is the point here.
    logging.getLogger("lm_eval.models.huggingface").setLevel(logging.ERROR)
    return HFLM(pretrained=model, tokenizer=tokenizer, backend="causal", batch_size=batch_size)


@contextlib.contextmanager
def _log_level(name: str, level: int) -> Iterator[None]:
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


def run_lm_eval(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    refs: Sequence[str],
    *,
    batch_size: int = 16,
    limit: int | None = None,
    seed: int = 0,
    quiet: bool = False,
    lm: Any = None,
) -> tuple[list[TaskResult], dict[str, Any]]:
    """Run the lm-eval tasks in `refs` on `model`; (one result per task, lm-eval's raw output).

    `quiet` hides lm-eval's progress bars and its log below errors. `lm` reuses an HFLM
    built by `hf_lm` (the benchmark times its generation phase).
    """
    resolved = resolve_task_refs(refs)
    lm = lm if lm is not None else hf_lm(model, tokenizer, batch_size)
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    # Indexing lm-eval's thousands of built-in tasks takes ~15 s: skip it when every task is local.
    manager = TaskManager(
        include_path=resolved.include_paths or None,
        include_defaults=_local_count(refs) < len(refs),
    )
    unknown = [name for name in resolved.names if name not in manager.all_tasks]
    if unknown:
        raise ConfigurationError(f"unknown lm-eval task(s): {', '.join(unknown)}")
    with contextlib.ExitStack() as stack:
        if quiet:
            # lm-eval's bars cannot be switched off one by one: they write to stderr.
            stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
            stack.enter_context(_log_level("lm_eval", logging.ERROR))
        output = simple_evaluate(
            model=lm,
            tasks=resolved.names,
            task_manager=manager,
            limit=limit,
            log_samples=True,
            bootstrap_iters=0,
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
        )
    if output is None:  # only on non-zero ranks of a distributed run
        raise RuntimeError("lm-eval returned no results")
    return task_results(output), output


def task_results(output: dict[str, Any]) -> list[TaskResult]:
    """Each task's primary metric and item count from lm-eval's `simple_evaluate` output."""
    results = []
    for task, values in sorted(output["results"].items()):
        config = output.get("configs", {}).get(task, {})
        metrics = {
            key: float(value)
            for key, value in values.items()
            if "," in key
            and isinstance(value, int | float)
            and not key.split(",")[0].endswith("_stderr")
        }
        if not metrics:  # a group of tasks: its members are reported on their own
            continue
        listed = [
            m["metric"] for m in config.get("metric_list", []) if isinstance(m.get("metric"), str)
        ]
        primary = next(
            (key for name in listed for key in metrics if key.split(",")[0] == name),
            next(iter(metrics)),
        )
        metric, _, filter_name = primary.partition(",")
        stderr = values.get(f"{metric}_stderr,{filter_name}")
        samples = output.get("n-samples", {}).get(task, {})
        results.append(
            TaskResult(
                task=task,
                metric=metric,
                score=metrics[primary],
                n=int(samples.get("effective", samples.get("original", 0))),
                stderr=float(stderr) if isinstance(stderr, int | float) else None,
                metrics=metrics,
            )
        )
    return results


def fold_results(results: dict[str, Any], tasks: Sequence[TaskResult]) -> None:
    """Add each task to `results["domains"]` as `lmeval:<task>` and record the run under `lmeval`.

    The entries carry `source: "lm-eval"` and no items: steps that need items (the paired
    comparison, training pools) see them as report-only domains.
    """
    for task in tasks:
        results["domains"][DOMAIN_PREFIX + task.task] = {
            "score": task.score,
            "n": task.n,
            "metric": task.metric,
            "stderr": task.stderr,
            "source": "lm-eval",
        }
    results["lmeval"] = {
        "version": lm_eval_version(),
        "tasks": {
            task.task: {"metric": task.metric, "n": task.n, "metrics": task.metrics}
            for task in tasks
        },
    }


def lm_eval_version() -> str | None:
    """The installed lm-eval version, or None."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lm_eval")
    except PackageNotFoundError:
        return None
