"""Generation speed of Kaizen's evaluator against two baselines, on the same items, in one run.

    python benchmarks/generation.py                      # demo suite (50 items), bundled model
    python benchmarks/generation.py --items 10 --no-lm-eval

Contenders, all greedy, with the same chat-templated prompts, `max_new_tokens`, stop string
(a newline after some text), thread count and loaded model:

  (a) naive: `model.generate` one prompt at a time;
  (b) Kaizen: `kaizen.evaluator.generation.generate` (length-sorted batches, finished rows
      leave the batch);
  (c) lm-evaluation-harness's HF backend running the same items as a local `generate_until`
      task (same batch size as Kaizen), when lm-eval is installed (`kaizen[lmeval]`);
  (d) plain batched `model.generate`: the prompts in suite order, in batches of Kaizen's
      (first) batch size, left-padded, stopping at EOS or the stop string (`--no-batched`);
  (e) transformers' `generate_batch`: continuous batching with a paged KV cache, all prompts
      submitted at once, when the installed transformers has it (`--no-generate-batch`).

Prints wall times, tokens/s, the speed-ups of Kaizen over each baseline, and how many
outputs and scores are identical to Kaizen's (all scored with the suite's own scorers).
Timings on a shared machine vary: compare only figures from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Everything here is local: never wait on a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TASK_NAME = "kaizen_generation_benchmark"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model",
        default="bundled:smollm2-135m-instruct",
        help="model reference as for the evaluator (default: the bundled SmolLM2-135M-Instruct)",
    )
    parser.add_argument("--suite", default="demo", help="suite name or directory (default: demo)")
    parser.add_argument(
        "--items", type=int, default=None, help="use only this many items (default: all)"
    )
    parser.add_argument(
        "--max-new-tokens", type=int, default=32, help="per item (default: 32, the evaluator's)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        nargs="+",
        default=None,
        metavar="N",
        help="Kaizen's and lm-eval's batch size (default: the evaluator's, 64); several sizes "
        "compare (b) and (c) at each, the first giving the headline figures",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for every contender (default: torch's choice on this machine)",
    )
    parser.add_argument(
        "--no-lm-eval", action="store_true", help="skip (c) even when lm-eval is installed"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run (b) and (c) N times each, taking turns, and keep each one's fastest run "
        "(default: 1; (a) always runs once)",
    )
    parser.add_argument(
        "--no-naive",
        action="store_true",
        help="skip (a), which takes ~1.5 s an item on 2 CPU cores (for large suites)",
    )
    parser.add_argument(
        "--no-batched", action="store_true", help="skip (d), plain batched generate"
    )
    parser.add_argument(
        "--no-generate-batch", action="store_true", help="skip (e), transformers' generate_batch"
    )
    parser.add_argument(
        "--attention", choices=["sdpa", "eager"], default="sdpa", help="attention kernel (sdpa)"
    )
    parser.add_argument(
        "--precision",
        choices=["auto", "bf16", "fp32"],
        default="auto",
        help="weights' dtype: auto is bf16 on GPUs, float32 on CPUs",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return parser.parse_args(argv)


def run_batched(
    model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int, batch_size: int
) -> tuple[list[str], float]:
    """(d): `model.generate` on fixed batches in prompt order (left padding, greedy)."""
    import torch

    from kaizen.evaluator.generation import DEFAULT_STOP_STRINGS, cut_at_stop, end_token_ids

    end_ids = sorted(end_token_ids(model, tokenizer))
    texts: list[str] = []
    started = time.perf_counter()
    for start in range(0, len(prompts), batch_size):
        encoded = tokenizer(
            list(prompts[start : start + batch_size]),
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        ).to(model.device)
        width = encoded["input_ids"].shape[1]
        with torch.inference_mode():
            output = model.generate(
                **encoded,
                do_sample=False,
                max_new_tokens=max_new_tokens,
                eos_token_id=end_ids,
                pad_token_id=tokenizer.pad_token_id,
                stop_strings=list(DEFAULT_STOP_STRINGS),
                tokenizer=tokenizer,
            )
        for row in output[:, width:]:
            text = tokenizer.decode(row, skip_special_tokens=True)
            texts.append(cut_at_stop(text, DEFAULT_STOP_STRINGS)[0])
    return texts, time.perf_counter() - started


def run_generate_batch(
    model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int
) -> tuple[list[str], float] | str:
    """(e): transformers' continuous batching; the reason instead when it cannot run here."""
    from transformers import GenerationConfig

    from kaizen.evaluator.generation import DEFAULT_STOP_STRINGS, cut_at_stop, end_token_ids

    if not hasattr(model, "generate_batch"):
        return "this transformers has no generate_batch"
    end_ids = sorted(end_token_ids(model, tokenizer))
    config = GenerationConfig(  # type: ignore[no-untyped-call]
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=end_ids,
        pad_token_id=tokenizer.pad_token_id,
    )
    inputs = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    started = time.perf_counter()
    try:
        outputs = model.generate_batch(inputs=inputs, generation_config=config)
    except Exception as error:  # noqa: BLE001 - reported as the reason it was not compared
        return f"generate_batch failed: {type(error).__name__}: {error}"[:300]
    seconds = time.perf_counter() - started
    # Outputs are keyed by request id, in submission order (req_0, req_1, ...).
    ordered = sorted(outputs.values(), key=lambda o: int(str(o.request_id).rsplit("_", 1)[-1]))
    texts = []
    for output in ordered:
        text = tokenizer.decode(output.generated_tokens, skip_special_tokens=True)
        texts.append(cut_at_stop(text, DEFAULT_STOP_STRINGS)[0])
    return texts, seconds


def pick_items(suite: Any, count: int | None) -> list[Any]:
    """`count` items taken in turn from each domain (all items when None), in suite order."""
    items = list(suite.items)
    if count is None or count >= len(items):
        return items
    by_domain: dict[str, list[Any]] = {}
    for item in items:
        by_domain.setdefault(item.domain, []).append(item)
    chosen: set[str] = set()
    turn = 0
    while len(chosen) < count:
        for queue in by_domain.values():
            if turn < len(queue) and len(chosen) < count:
                chosen.add(queue[turn].id)
        turn += 1
    return [item for item in items if item.id in chosen]


def score_all(items: Sequence[Any], texts: Sequence[str]) -> list[float]:
    from kaizen.runtime.scoring import score

    return [
        score(item.scorer, text, item.answers, getattr(item, "scorer_options", None))[0]
        for item, text in zip(items, texts, strict=True)
    ]


def run_naive(
    model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int
) -> tuple[list[str], float]:
    """(a): one `model.generate` call per prompt, stopping at EOS or the stop string."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    from kaizen.evaluator.generation import DEFAULT_STOP_STRINGS, cut_at_stop, end_token_ids

    end_ids = sorted(end_token_ids(model, tokenizer))

    class StopString(StoppingCriteria):
        def __init__(self, prompt_length: int) -> None:
            self.prompt_length = prompt_length

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            text = tokenizer.decode(input_ids[0, self.prompt_length :], skip_special_tokens=True)
            done = cut_at_stop(text, DEFAULT_STOP_STRINGS)[1]
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool)

    texts = []
    started = time.perf_counter()
    for prompt in prompts:
        encoded = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        length = encoded["input_ids"].shape[1]
        with torch.inference_mode():
            output = model.generate(
                **encoded,
                do_sample=False,
                max_new_tokens=max_new_tokens,
                eos_token_id=end_ids,
                pad_token_id=tokenizer.pad_token_id,
                stopping_criteria=StoppingCriteriaList([StopString(length)]),
            )
        text = tokenizer.decode(output[0, length:], skip_special_tokens=True)
        texts.append(cut_at_stop(text, DEFAULT_STOP_STRINGS)[0])
    return texts, time.perf_counter() - started


def write_task(
    folder: Path, items: Sequence[Any], prompts: Sequence[str], max_new_tokens: int
) -> Path:
    """The items as a local lm-eval `generate_until` task: the prompt is used verbatim."""
    import yaml

    data = folder / "items.jsonl"
    with data.open("w", encoding="utf-8") as handle:
        for item, prompt in zip(items, prompts, strict=True):
            row = {"id": item.id, "prompt": prompt, "answer": item.reference}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    task = {
        "task": TASK_NAME,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}, "cache_dir": str(folder / "cache")},
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "{{prompt}}",
        "doc_to_target": "{{answer}}",
        "target_delimiter": "",
        "generation_kwargs": {
            "until": ["\n"],
            "do_sample": False,
            "max_gen_toks": max_new_tokens,
        },
        "metric_list": [{"metric": "exact_match"}],
    }
    path = folder / f"{TASK_NAME}.yaml"
    path.write_text(yaml.safe_dump(task, sort_keys=False), encoding="utf-8")
    return path


def run_lm_eval(
    model: Any,
    tokenizer: Any,
    items: Sequence[Any],
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int,
) -> dict[str, Any]:
    """(c): lm-eval's HF backend on the same items; the generation phase is timed on its own."""
    from kaizen.evaluator import lmeval
    from kaizen.evaluator.generation import DEFAULT_STOP_STRINGS, cut_at_stop

    with tempfile.TemporaryDirectory(prefix="kaizen-bench-") as tmp:
        task_file = write_task(Path(tmp), items, prompts, max_new_tokens)
        started = time.perf_counter()
        lm = lmeval.hf_lm(model, tokenizer, batch_size)
        phase: dict[str, float] = {}
        generate_until = lm.generate_until

        def timed(*args: Any, **kwargs: Any) -> Any:
            begun = time.perf_counter()
            try:
                return generate_until(*args, **kwargs)
            finally:
                phase["generate"] = phase.get("generate", 0.0) + time.perf_counter() - begun

        lm.generate_until = timed
        _, output = lmeval.run_lm_eval(model, tokenizer, [str(task_file)], lm=lm)
        total = time.perf_counter() - started
    by_id = {s["doc"]["id"]: s for s in output["samples"][TASK_NAME]}
    raw = [by_id[item.id]["resps"][0][0] for item in items]
    contexts = [_context(by_id[item.id]["arguments"]) for item in items]
    return {
        # lm-eval already cut at "\n"; the same clean-up as Kaizen's (strip) for scoring.
        "texts": [cut_at_stop(text, DEFAULT_STOP_STRINGS)[0] for text in raw],
        "raw": raw,
        "same_prompts": sum(c == p for c, p in zip(contexts, prompts, strict=True)),
        "generate_seconds": phase.get("generate", float("nan")),
        "total_seconds": total,
        "exact_match": output["results"][TASK_NAME].get("exact_match,none"),
    }


def _context(arguments: Any) -> str:
    """The prompt lm-eval sent, from a logged sample's arguments (a list or, in files, a dict)."""
    first = arguments[0] if isinstance(arguments, list | tuple) else arguments["gen_args_0"]
    return str(first[0] if isinstance(first, list | tuple) else first["arg_0"])


def lm_eval_available() -> str | None:
    """None when lm-eval imports, else why not."""
    try:
        import lm_eval.models.huggingface  # noqa: F401
    except ImportError as error:
        return str(error)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from kaizen.evaluator.generation import DEFAULT_BATCH_SIZE, generate
    from kaizen.runtime import models
    from kaizen.runtime.suites import load_suite

    batch_sizes = args.batch_size or [DEFAULT_BATCH_SIZE]
    if min(batch_sizes) < 1:
        raise SystemExit(f"--batch-size must be at least 1, got {min(batch_sizes)}")
    if args.repeat < 1:
        raise SystemExit(f"--repeat must be at least 1, got {args.repeat}")
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    suite = load_suite(args.suite)
    items = pick_items(suite, args.items)
    tokenizer = models.load_tokenizer(args.model)
    model = models.load_model(
        args.model,
        dtype=models.precision_dtype(args.precision),
        load_options={"attn_implementation": args.attention},
    )
    prompts = [models.format_prompt(tokenizer, item.user_message()) for item in items]
    print(
        f"{len(items)} items of suite {suite.name}, model {args.model} on {model.device} "
        f"({str(model.dtype).removeprefix('torch.')}), greedy, max_new_tokens "
        f"{args.max_new_tokens}, batch size {', '.join(map(str, batch_sizes))}, "
        f"{threads} torch threads, best of {args.repeat} for Kaizen and lm-eval",
        flush=True,
    )
    # Warm up kernels and allocators once, untimed, so no contender pays for going first.
    generate(model, tokenizer, prompts[:2], max_new_tokens=2, batch_size=2, progress=False)

    figures: dict[str, Any] = {
        "items": len(items),
        "model": args.model,
        "suite": suite.name,
        "max_new_tokens": args.max_new_tokens,
        "batch_size": batch_sizes[0],
        "repeat": args.repeat,
        "threads": threads,
        "device": str(model.device),
    }
    torch.set_num_threads(threads)
    naive: tuple[list[str], float] | None = None
    if not args.no_naive:
        naive = run_naive(model, tokenizer, prompts, args.max_new_tokens)
    why_not = "skipped (--no-lm-eval)" if args.no_lm_eval else lm_eval_available()

    sweep: list[dict[str, Any]] = []
    for batch_size in batch_sizes:
        point: dict[str, Any] = {"batch_size": batch_size}
        # (b) and (c) take turns; each keeps its fastest run (noise on a shared machine only
        # ever adds time), and every repeat must give the same outputs.
        for _ in range(args.repeat):
            torch.set_num_threads(threads)
            report = generate(
                model,
                tokenizer,
                prompts,
                max_new_tokens=args.max_new_tokens,
                batch_size=batch_size,
                progress=False,
            )
            point["report"] = _fastest(
                point.get("report"),
                report,
                "Kaizen",
                lambda r: [o.text for o in r.outputs],
                lambda r: r.wall_seconds,
            )
            if why_not is None:
                torch.set_num_threads(threads)
                run = run_lm_eval(model, tokenizer, items, prompts, args.max_new_tokens, batch_size)
                point["lm_eval"] = _fastest(
                    point.get("lm_eval"),
                    run,
                    "lm-eval",
                    lambda r: r["texts"],
                    lambda r: r["generate_seconds"],
                )
        sweep.append(point)

    report, lm_eval = sweep[0]["report"], sweep[0].get("lm_eval")
    kaizen_texts = [o.text for o in report.outputs]
    kaizen_scores = score_all(items, kaizen_texts)
    tokens = report.new_tokens

    rows: list[dict[str, Any]] = []

    def add(name: str, seconds: float, texts: Sequence[str], note: str = "") -> None:
        scores = score_all(items, texts)
        rows.append(
            {
                "contender": name,
                "seconds": seconds,
                "tokens_per_second": tokens / seconds if seconds > 0 else float("nan"),
                "identical_outputs": sum(a == b for a, b in zip(texts, kaizen_texts, strict=True)),
                "identical_scores": sum(a == b for a, b in zip(scores, kaizen_scores, strict=True)),
                "score": sum(scores) / len(scores),
                "note": note,
            }
        )

    if naive is not None:
        add("(a) naive, one prompt at a time", naive[1], naive[0])
    add("(b) Kaizen evaluator", report.wall_seconds, kaizen_texts)
    if lm_eval is not None:
        add(
            "(c) lm-eval HF backend",
            lm_eval["generate_seconds"],
            lm_eval["texts"],
            note=f"generation phase; whole run {lm_eval['total_seconds']:.1f} s",
        )
    if not args.no_batched:
        torch.set_num_threads(threads)
        batched = run_batched(model, tokenizer, prompts, args.max_new_tokens, batch_sizes[0])
        add("(d) plain batched generate", batched[1], batched[0])
        figures["speedup_vs_batched_generate"] = batched[1] / report.wall_seconds
    if not args.no_generate_batch:
        torch.set_num_threads(threads)
        continuous = run_generate_batch(model, tokenizer, prompts, args.max_new_tokens)
        if isinstance(continuous, str):
            figures["generate_batch"] = continuous
        else:
            add("(e) transformers generate_batch", continuous[1], continuous[0])
            figures["speedup_vs_generate_batch"] = continuous[1] / report.wall_seconds
    if torch.get_num_threads() != threads:
        print(f"warning: torch threads changed to {torch.get_num_threads()}", file=sys.stderr)

    print()
    print(f"Batch size {batch_sizes[0]}:")
    print("| contender | wall s | tokens/s | outputs = Kaizen's | scores = Kaizen's | mean score |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        note = f" ({row['note']})" if row["note"] else ""
        print(
            f"| {row['contender']}{note} | {row['seconds']:.1f} | {row['tokens_per_second']:.1f} "
            f"| {row['identical_outputs']}/{len(items)} | {row['identical_scores']}/{len(items)} "
            f"| {row['score']:.3f} |"
        )
    print(f"\ntokens/s counts the {tokens} answer tokens Kaizen generated, for every contender.")
    if naive is not None:
        speedup_naive = naive[1] / report.wall_seconds
        print(f"Kaizen vs naive: {speedup_naive:.2f}x faster (target >= 3x)")
        figures["speedup_vs_naive"] = speedup_naive
    else:
        print("naive not compared: skipped (--no-naive)")
    if lm_eval is not None:
        speedup_phase = lm_eval["generate_seconds"] / report.wall_seconds
        speedup_total = lm_eval["total_seconds"] / report.wall_seconds
        print(
            f"Kaizen vs lm-eval: {speedup_phase:.2f}x faster than its generation phase, "
            f"{speedup_total:.2f}x than its whole run (target >= 1.5x)"
        )
        print(
            f"lm-eval saw Kaizen's exact prompt for {lm_eval['same_prompts']}/{len(items)} items; "
            f"its own exact_match: {lm_eval['exact_match']}"
        )
        figures["speedup_vs_lm_eval"] = speedup_phase
        figures["speedup_vs_lm_eval_whole_run"] = speedup_total
        figures["lm_eval_same_prompts"] = lm_eval["same_prompts"]
    else:
        print(f"lm-eval not compared: {why_not} (install it with pip install 'kaizen[lmeval]')")
        figures["lm_eval"] = why_not
    if "speedup_vs_batched_generate" in figures:
        print(
            f"Kaizen vs plain batched generate: {figures['speedup_vs_batched_generate']:.2f}x "
            "(GPU target >= 2x)"
        )
    if "speedup_vs_generate_batch" in figures:
        print(
            f"Kaizen vs transformers generate_batch: {figures['speedup_vs_generate_batch']:.2f}x "
            "(GPU target >= 1x)"
        )
    elif "generate_batch" in figures:
        print(f"generate_batch not compared: {figures['generate_batch']}")
    figures["attention"], figures["precision"] = args.attention, args.precision
    figures["contenders"] = rows
    figures["answer_tokens"] = tokens
    naive_seconds = naive[1] if naive is not None else None
    figures["by_batch_size"] = [_sweep_point(point, naive_seconds) for point in sweep]
    if len(sweep) > 1:
        print_sweep(figures["by_batch_size"], len(items))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


def _fastest(
    best: Any,
    run: Any,
    who: str,
    texts: Callable[[Any], list[str]],
    seconds: Callable[[Any], float],
) -> Any:
    """The faster of two runs of one contender (`best` None on the first), which must have
    produced the same outputs: greedy decoding does not change between repeats."""
    if best is None:
        return run
    if texts(best) != texts(run):
        raise SystemExit(f"{who}'s outputs changed between repeats: greedy decoding must not")
    return run if seconds(run) < seconds(best) else best


def _sweep_point(point: dict[str, Any], naive_seconds: float | None) -> dict[str, Any]:
    """One batch size's figures: Kaizen's time and, when lm-eval ran, its time and the ratios."""
    report = point["report"]
    texts = [o.text for o in report.outputs]
    row: dict[str, Any] = {
        "batch_size": point["batch_size"],
        "kaizen_seconds": report.wall_seconds,
    }
    if naive_seconds is not None:
        row["speedup_vs_naive"] = naive_seconds / report.wall_seconds
    lm_eval = point.get("lm_eval")
    if lm_eval is not None:
        row.update(
            {
                "lm_eval_seconds": lm_eval["generate_seconds"],
                "lm_eval_whole_run_seconds": lm_eval["total_seconds"],
                "speedup_vs_lm_eval": lm_eval["generate_seconds"] / report.wall_seconds,
                "speedup_vs_lm_eval_whole_run": lm_eval["total_seconds"] / report.wall_seconds,
                "identical_outputs": sum(
                    a == b for a, b in zip(texts, lm_eval["texts"], strict=True)
                ),
            }
        )
    return row


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def print_sweep(points: Sequence[dict[str, Any]], count: int) -> None:
    """The batch-size sweep as a table: Kaizen and lm-eval at each size, and their ratio."""
    print("\nBy batch size (Kaizen and lm-eval at the same size; lm-eval's generation phase):")
    print("| batch | Kaizen s | lm-eval s | Kaizen vs lm-eval | vs naive | outputs equal |")
    print("|---|---|---|---|---|---|")
    for p in points:
        if "lm_eval_seconds" in p:
            lm = f"{p['lm_eval_seconds']:.1f} | {p['speedup_vs_lm_eval']:.2f}x"
            same = f"{p['identical_outputs']}/{count}"
        else:
            lm, same = "- | -", "-"
        print(
            f"| {p['batch_size']} | {p['kaizen_seconds']:.1f} | {lm} "
            f"| {_ratio(p.get('speedup_vs_naive'))} | {same} |"
        )


if __name__ == "__main__":
    sys.exit(main())
