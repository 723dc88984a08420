"""Decoding options on the tiny model: agreement with `transformers`, seeded sampling, per-row stops."""

from __future__ import annotations

from typing import Any

import pytest

from kaizen.evaluator.generation import Sampling, cut_at_stop, end_token_ids, generate
from kaizen.runtime.models import format_prompt
from tests.evaluator.conftest import QUESTIONS


def hf_one_at_a_time(model: Any, tokenizer: Any, prompts: list[str], **kwargs: Any) -> list[str]:
    """The reference: `model.generate` on each prompt alone, no padding anywhere."""
    import torch

    texts = []
    for prompt in prompts:
        encoded = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            output = model.generate(
                **encoded,
                max_new_tokens=10,
                eos_token_id=sorted(end_token_ids(model, tokenizer)),
                pad_token_id=tokenizer.pad_token_id,
                **kwargs,
            )
        new = output[0, encoded["input_ids"].shape[1] :]
        texts.append(cut_at_stop(tokenizer.decode(new, skip_special_tokens=True), ())[0])
    return texts


def texts(report: Any) -> list[str]:
    return [o.text for o in report.outputs]


@pytest.mark.parametrize(
    "sampling",
    [Sampling(), Sampling(repetition_penalty=1.5)],
    ids=["greedy", "repetition-penalty"],
)
def test_batched_decoding_equals_transformers_one_prompt_at_a_time(
    tiny: tuple[Any, Any, list[str]], sampling: Sampling
) -> None:
    model, tokenizer, prompts = tiny
    hf_kwargs = {"do_sample": False, "repetition_penalty": sampling.repetition_penalty}
    expected = hf_one_at_a_time(model, tokenizer, prompts, **hf_kwargs)
    batched = generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=10,
        batch_size=4,
        stop_strings=(),
        sampling=sampling,
        progress=False,
    )
    assert len(set(expected)) == len(prompts)
    assert texts(batched) == expected


def test_repetition_penalty_changes_the_output(tiny: tuple[Any, Any, list[str]]) -> None:
    model, tokenizer, prompts = tiny
    plain = generate(
        model, tokenizer, prompts, max_new_tokens=16, batch_size=8, stop_strings=(), progress=False
    )
    penalised = generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=16,
        batch_size=8,
        stop_strings=(),
        sampling=Sampling(repetition_penalty=2.0),
        progress=False,
    )
    assert texts(plain) != texts(penalised)


def test_sampling_with_a_seed_is_reproducible_and_independent_of_batching(
    tiny: tuple[Any, Any, list[str]],
) -> None:
    model, tokenizer, prompts = tiny

    def sample(seed: int, batch_size: int) -> list[str]:
        report = generate(
            model,
            tokenizer,
            prompts,
            max_new_tokens=12,
            batch_size=batch_size,
            stop_strings=(),
            sampling=Sampling(temperature=1.0, top_p=0.95, seed=seed),
            progress=False,
        )
        return texts(report)

    first = sample(seed=7, batch_size=4)
    assert sample(seed=7, batch_size=4) == first
    # Each prompt has its own random stream, so batching does not change a sample.
    assert sample(seed=7, batch_size=1) == first
    assert sample(seed=8, batch_size=4) != first
    greedy = texts(
        generate(
            model,
            tokenizer,
            prompts,
            max_new_tokens=12,
            batch_size=4,
            stop_strings=(),
            progress=False,
        )
    )
    assert first != greedy


def test_a_tiny_nucleus_is_greedy(tiny: tuple[Any, Any, list[str]]) -> None:
    model, tokenizer, prompts = tiny
    greedy = generate(
        model, tokenizer, prompts, max_new_tokens=10, batch_size=4, stop_strings=(), progress=False
    )
    nucleus = generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=10,
        batch_size=4,
        stop_strings=(),
        sampling=Sampling(temperature=1.0, top_p=1e-6, seed=3),
        progress=False,
    )
    assert texts(nucleus) == texts(greedy)


def test_row_stop_strings_cut_only_their_row(tiny: tuple[Any, Any, list[str]]) -> None:
    model, tokenizer, prompts = tiny
    free = generate(
        model, tokenizer, prompts, max_new_tokens=16, batch_size=8, stop_strings=(), progress=False
    )
    # Stop the first row on a character it produces after its first one; other rows keep theirs.
    stop = free.outputs[0].text.strip()[1]
    rows = [(stop,)] + [()] * (len(prompts) - 1)
    cut = generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=16,
        batch_size=8,
        stop_strings=(),
        row_stop_strings=rows,
        progress=False,
    )
    assert cut.outputs[0].text == free.outputs[0].text.strip().split(stop)[0].rstrip()
    assert cut.outputs[0].new_tokens < free.outputs[0].new_tokens
    assert texts(cut)[1:] == texts(free)[1:]


def test_row_stop_strings_must_match_the_prompts(tiny: tuple[Any, Any, list[str]]) -> None:
    model, tokenizer, prompts = tiny
    with pytest.raises(ValueError, match="row_stop_strings"):
        generate(
            model,
            tokenizer,
            prompts,
            max_new_tokens=4,
            batch_size=4,
            row_stop_strings=[()],
            progress=False,
        )


@pytest.mark.parametrize(
    "arguments",
    [
        {"temperature": -0.1},
        {"temperature": float("nan")},
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"repetition_penalty": 0.0},
        {"seed": -1},
    ],
)
def test_bad_sampling_options_are_refused(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Sampling(**arguments)  # type: ignore[arg-type]


def test_defaults_are_greedy() -> None:
    assert Sampling() == Sampling(temperature=0.0, top_p=1.0, repetition_penalty=1.0, seed=0)
    assert Sampling().greedy and not Sampling(temperature=0.7).greedy


def test_the_shared_prompt_prefix_is_computed_once_and_changes_nothing(
    tiny: tuple[Any, Any, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kaizen.evaluator import batching

    model, tokenizer, prompts = tiny
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    shared = batching.shared_prefix(ids)
    assert shared >= batching.MIN_SHARED_PREFIX  # the chat template's system turn
    assert len({len(i) for i in ids}) > 1  # rows of different lengths: padding in the middle
    real_forward = model.forward
    prefix_passes: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("attention_mask") is None:
            prefix_passes.append(kwargs["input_ids"].shape[1])
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", counting)
    with_prefix = generate(
        model, tokenizer, prompts, max_new_tokens=10, batch_size=8, stop_strings=(), progress=False
    )
    assert prefix_passes == [shared]
    monkeypatch.setattr(batching, "MIN_SHARED_PREFIX", 10**9)
    without = generate(
        model, tokenizer, prompts, max_new_tokens=10, batch_size=8, stop_strings=(), progress=False
    )
    assert prefix_passes == [shared]
    assert texts(with_prefix) == texts(without)
    assert [o.prompt_tokens for o in with_prefix.outputs] == [len(i) for i in ids]


@pytest.mark.parametrize(
    ("lists", "expected"),
    [
        ([[1, 2, 3], [1, 2, 4]], 2),
        ([[1, 2, 3], [1, 2, 3]], 2),  # every row keeps one token of its own
        ([[1, 2], [1, 2, 3, 4]], 1),
        ([[5, 2], [1, 2]], 0),
        ([[1, 2, 3]], 0),
    ],
)
def test_shared_prefix_length(lists: list[list[int]], expected: int) -> None:
    from kaizen.evaluator.batching import shared_prefix

    assert shared_prefix(lists) == expected


def test_waiting_prompts_join_running_rows_without_changing_outputs(
    tiny: tuple[Any, Any, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kaizen.evaluator import batching

    model, tokenizer, _ = tiny
    prompts = [format_prompt(tokenizer, f"{q} {'Why? ' * n}") for n in range(3) for q in QUESTIONS]
    free = generate(
        model, tokenizer, prompts, max_new_tokens=12, batch_size=1, stop_strings=(), progress=False
    )
    # A stop string some rows reach early and others never: rows finish at different steps.
    stop = free.outputs[0].text.strip()[2]
    joins: list[int] = []
    real_join = batching.InFlight.join

    def counting(self: Any, other: Any) -> None:
        joins.append(len(other.rows))
        real_join(self, other)

    monkeypatch.setattr(batching.InFlight, "join", counting)
    single = generate(
        model, tokenizer, prompts, max_new_tokens=12, batch_size=1, stop_strings=(stop,),
        progress=False,
    )  # fmt: skip
    assert joins == []  # one row at a time: nothing to join
    real_forward = model.forward
    prefix_passes: list[int] = []

    def counting_forward(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("attention_mask") is None:
            prefix_passes.append(kwargs["input_ids"].shape[1])
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", counting_forward)
    batched = generate(
        model, tokenizer, prompts, max_new_tokens=12, batch_size=4, stop_strings=(stop,),
        progress=False,
    )  # fmt: skip
    assert joins, "rows finished early and waiting prompts joined the running ones"
    assert len(prefix_passes) == 1  # the system turn's cache, computed once for every join
    assert len({o.new_tokens for o in batched.outputs}) > 1
    assert texts(batched) == texts(single)
    assert [o.new_tokens for o in batched.outputs] == [o.new_tokens for o in single.outputs]
    assert [o.truncated for o in batched.outputs] == [o.truncated for o in single.outputs]
    assert batched.wall_seconds > 0 and all(o.seconds > 0 for o in batched.outputs)


@pytest.mark.parametrize(
    ("lengths", "pass_tokens", "expected"),
    [
        ([], 32, []),
        ([7], 32, [(0, 1)]),
        ([10, 10, 10], 0, [(0, 3)]),  # equal lengths: one pass, whatever a pass costs
        ([40, 12, 12, 12], 0, [(0, 1), (1, 4)]),  # free passes: no padding at all
        ([40, 12, 12, 12], 100, [(0, 4)]),  # padding (84 tokens) is cheaper than a pass
        ([40, 12, 12, 12], 32, [(0, 1), (1, 4)]),  # 84 padded tokens cost more than a pass
        ([40, 32, 31, 20, 20, 19], 32, [(0, 3), (3, 6)]),
        ([9, 8, 7, 6, 5, 4, 3, 2], 1000, [(0, 8)]),
    ],
)
def test_prefill_groups_minimise_padding_plus_passes(
    lengths: list[int], pass_tokens: int, expected: list[tuple[int, int]]
) -> None:
    from kaizen.evaluator.batching import prefill_groups

    assert prefill_groups(lengths, pass_tokens) == expected


def test_prefill_groups_need_longest_first() -> None:
    from kaizen.evaluator.batching import prefill_groups

    with pytest.raises(ValueError, match="longest first"):
        prefill_groups([3, 5], 32)


@pytest.mark.parametrize("pass_tokens", [0, 10**9])
def test_prefill_groups_change_no_output(
    tiny: tuple[Any, Any, list[str]], monkeypatch: pytest.MonkeyPatch, pass_tokens: int
) -> None:
    from kaizen.evaluator import batching

    model, tokenizer, prompts = tiny
    expected = generate(
        model, tokenizer, prompts, max_new_tokens=10, batch_size=1, stop_strings=(), progress=False
    )
    passes: list[int] = []
    real_forward = model.forward

    def counting(*args: Any, **kwargs: Any) -> Any:
        if kwargs["input_ids"].shape[1] > 1 and kwargs.get("attention_mask") is not None:
            passes.append(kwargs["input_ids"].shape[0])
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", counting)
    monkeypatch.setitem(batching.PREFILL_PASS_TOKENS, "cpu", pass_tokens)
    grouped = generate(
        model, tokenizer, prompts, max_new_tokens=10, batch_size=8, stop_strings=(), progress=False
    )
    # Free passes: one per distinct prompt length; costly passes: every prompt in one.
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    assert len(passes) == (len({len(i) for i in ids}) if pass_tokens == 0 else 1)
    assert texts(grouped) == texts(expected)
