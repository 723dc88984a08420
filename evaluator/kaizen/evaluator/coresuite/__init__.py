"""Generate the `core` suite (eval.jsonl, train.jsonl) from the fact tables and templates in this package.

Run `python -m kaizen.evaluator.coresuite` after changing anything here
and commit the JSONL it writes; a test checks that the committed files are what this script
produces. Output is deterministic: random choices use a fixed seed, and every numeric answer
is computed, never typed. Facts are common knowledge written for this project (Apache-2.0).

Each domain has 12 evaluation items per capability:
- factual_recall: one fact;
- cross_referencing: two facts combined (a lookup through another fact, a sum, a difference);
- counterfactual: a premise that changes a fact, and a question whose answer follows from it;
- multi_step: several facts or operations chained.
The training pool of a domain teaches the same facts in other words and shows the same kinds
of reasoning on other numbers; it never repeats an evaluation question.
"""

from kaizen.evaluator.coresuite.assemble import build, main, render

__all__ = ["build", "main", "render"]
