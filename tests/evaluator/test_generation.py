"""Batched generation on the tiny model: same outputs as one prompt at a time, honest token counts."""

from __future__ import annotations

from typing import Any

import pytest

from kaizen.evaluator.generation import cut_at_stop, generate


@pytest.mark.parametrize("stop_strings", [(), ("\n",), ("e",)])
def test_batched_outputs_equal_one_at_a_time(
    tiny: tuple[Any, Any, list[str]], stop_strings: tuple[str, ...]
) -> None:
    model, tokenizer, prompts = tiny
    batched = generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=12,
        batch_size=4,
        stop_strings=stop_strings,
        progress=False,
    )
    single = generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=12,
        batch_size=1,
        stop_strings=stop_strings,
        progress=False,
    )
    assert len({o.text for o in single.outputs}) == len(prompts)  # not vacuous: every row differs
    assert [o.text for o in batched.outputs] == [o.text for o in single.outputs]
    assert [o.new_tokens for o in batched.outputs] == [o.new_tokens for o in single.outputs]
    assert [o.truncated for o in batched.outputs] == [o.truncated for o in single.outputs]


def test_outputs_come_back_in_prompt_order(tiny: tuple[Any, Any, list[str]]) -> None:
    model, tokenizer, prompts = tiny
    forward = generate(
        model, tokenizer, prompts, max_new_tokens=8, batch_size=2, stop_strings=(), progress=False
    )
    backward = generate(
        model,
        tokenizer,
        prompts[::-1],
        max_new_tokens=8,
        batch_size=2,
        stop_strings=(),
        progress=False,
    )
    assert [o.text for o in forward.outputs] == [o.text for o in backward.outputs][::-1]
    assert [o.prompt_tokens for o in forward.outputs] == [
        len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts
    ]


def test_token_counts_stop_at_the_limit_without_a_stop(tiny: tuple[Any, Any, list[str]]) -> None:
    model, tokenizer, prompts = tiny
    report = generate(
        model, tokenizer, prompts, max_new_tokens=6, batch_size=8, stop_strings=(), progress=False
    )
    eos = tokenizer.eos_token_id
    for output in report.outputs:
        assert 0 <= output.new_tokens <= 6
        # A row counts as truncated exactly when it used every token without reaching EOS.
        assert output.truncated == (output.new_tokens == 6)
    assert report.new_tokens == sum(o.new_tokens for o in report.outputs)
    assert report.tokens_per_second > 0
    assert eos == tokenizer.pad_token_id  # the case the counting has to get right


def test_rows_end_at_their_own_eos(
    tiny: tuple[Any, Any, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tokenizer, prompts = tiny
    free = generate(
        model, tokenizer, prompts, max_new_tokens=12, batch_size=8, stop_strings=(), progress=False
    )
    # Declare a token that some rows produce mid-way an end-of-sequence token (here not the
    # pad token), so rows finish at different lengths within one batch.
    first = tokenizer(free.outputs[0].text, add_special_tokens=False)["input_ids"]
    end_id = first[len(first) // 2]
    monkeypatch.setattr(model.generation_config, "eos_token_id", [tokenizer.eos_token_id, end_id])
    batched = generate(
        model, tokenizer, prompts, max_new_tokens=12, batch_size=8, stop_strings=(), progress=False
    )
    single = generate(
        model, tokenizer, prompts, max_new_tokens=12, batch_size=1, stop_strings=(), progress=False
    )
    assert [o.new_tokens for o in batched.outputs] == [o.new_tokens for o in single.outputs]
    assert [o.text for o in batched.outputs] == [o.text for o in single.outputs]
    assert batched.outputs[0].new_tokens < 12 and not batched.outputs[0].truncated
    assert len({o.new_tokens for o in batched.outputs}) > 1


def test_a_stop_string_ends_a_row_early(tiny: tuple[Any, Any, list[str]]) -> None:
    model, tokenizer, prompts = tiny
    free = generate(
        model, tokenizer, prompts, max_new_tokens=16, batch_size=8, stop_strings=(), progress=False
    )
    # Stop on the first character any row actually produced, so the test cannot pass vacuously.
    text = next(o.text for o in free.outputs if o.text.strip())
    stop = text.strip()[0]
    stopped = generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=16,
        batch_size=8,
        stop_strings=(stop,),
        progress=False,
    )
    assert all(stop not in o.text for o in stopped.outputs)
    assert stopped.new_tokens < free.new_tokens
    assert not any(
        o.truncated for o, f in zip(stopped.outputs, free.outputs, strict=True) if stop in f.text
    )


def test_out_of_memory_halves_the_batch_and_keeps_outputs(
    tiny: tuple[Any, Any, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tokenizer, prompts = tiny
    expected = generate(
        model, tokenizer, prompts, max_new_tokens=6, batch_size=1, stop_strings=(), progress=False
    )
    real_forward = model.forward
    sizes: list[int] = []

    def limited(*args: Any, **kwargs: Any) -> Any:
        # Behave like an accelerator with room for two rows; record the prompt passes (the
        # shared prefix runs first on one row, without a mask).
        rows = kwargs["input_ids"].shape[0]
        if kwargs["input_ids"].shape[1] > 1 and kwargs.get("attention_mask") is not None:
            sizes.append(rows)
        if rows > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", limited)
    report = generate(
        model, tokenizer, prompts, max_new_tokens=6, batch_size=8, stop_strings=(), progress=False
    )
    assert report.batch_size == 2
    # All five prompts are admitted at once (prefilled in length groups) and fail; the halved
    # size (2) fits and is kept: 2, 2, then the last one.
    failed_at = next(i for i, rows in enumerate(sizes) if rows > 2)
    assert sum(sizes[: failed_at + 1]) == 5
    assert sizes[failed_at + 1 :] == [2, 2, 1]
    assert [o.text for o in report.outputs] == [o.text for o in expected.outputs]


def test_out_of_memory_with_one_row_is_raised(
    tiny: tuple[Any, Any, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tokenizer, prompts = tiny

    def full(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(model, "forward", full)
    with pytest.raises(RuntimeError, match="out of memory"):
        generate(model, tokenizer, prompts, max_new_tokens=4, batch_size=4, progress=False)


def test_other_errors_are_not_mistaken_for_out_of_memory(
    tiny: tuple[Any, Any, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tokenizer, prompts = tiny

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(model, "forward", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        generate(model, tokenizer, prompts, max_new_tokens=4, batch_size=4, progress=False)


def test_right_padding_is_refused(tiny: tuple[Any, Any, list[str]]) -> None:
    model, tokenizer, prompts = tiny
    tokenizer.padding_side = "right"
    try:
        with pytest.raises(ValueError, match="padding_side='left'"):
            generate(model, tokenizer, prompts, max_new_tokens=4, batch_size=4, progress=False)
    finally:
        tokenizer.padding_side = "left"


@pytest.mark.parametrize(
    ("text", "stops", "expected"),
    [
        ("Paris.\nMore", ("\n",), ("Paris.", True)),
        ("\n\nParis.\nMore", ("\n",), ("Paris.", True)),
        ("Paris.", ("\n",), ("Paris.", False)),
        ("  Paris.  ", (), ("Paris.", False)),
        ("A. B? C", ("?", "."), ("A", True)),
        ("", ("\n",), ("", False)),
    ],
)
def test_cut_at_stop(text: str, stops: tuple[str, ...], expected: tuple[str, bool]) -> None:
    assert cut_at_stop(text, stops) == expected
