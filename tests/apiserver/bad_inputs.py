"""The CRD-level table of bad inputs: what `kaizen check` says and what a real API server does.

Each row changes one field of the sample cycle (manifests/samples/). Three verdicts per row:

* ``check``: the error `kaizen check` prints for the field (a substring), or None when it
  calls the file valid;
* ``api``: what the API server does when any client (the Python client, kopf, a GitOps
  controller...) sends the object as it is, without client-side validation:

  - ``reject``: ``422 Invalid`` naming the field (``api_says`` is a substring of the message);
  - ``prune``: created, the field silently dropped (no row: the spec keeps unknown fields,
    ``x-kubernetes-preserve-unknown-fields``, so that the operator can refuse them);
  - ``default``: created, the ``null`` dropped and the schema's default put in its place;
  - ``accept``: created as sent (an unknown field, or a rule the schema cannot express; the
    operator then fails the cycle with ``InvalidSpec`` naming the field);

* ``kubectl``: ``kubectl apply -f`` with its default validation (kubectl 1.32 against this
  1.20 server validates client-side with the published OpenAPI schema; against 1.25+ servers
  it asks for the server's strict field validation, with the same outcome for unknown fields).

tests/apiserver/test_bad_inputs.py asserts every column (the ``check`` column also runs in the
fast tier, without a server); docs/kube-testing.md shows the table (:func:`markdown_table`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = REPO_ROOT / "manifests" / "samples" / "kaizen.dev_v1alpha1_improvementcycle.yaml"


@dataclass(frozen=True)
class BadInput:
    id: str
    what: str
    path: str  # dotted path under spec; "" is spec itself
    value: Any
    check: str | None
    api: str
    kubectl: str
    api_says: str = ""

    def document(self, name: str = "c") -> dict[str, Any]:
        """The sample cycle with this row's change."""
        doc = copy.deepcopy(yaml.safe_load(SAMPLE.read_text()))
        doc["metadata"] = {"name": name}
        if not self.path:
            doc["spec"] = self.value
            return doc
        node = doc["spec"]
        *parents, leaf = self.path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = copy.deepcopy(self.value)
        return doc


def lookup(spec: Any, path: str) -> Any:
    """The value at a dotted path of a stored spec, or :data:`ABSENT`."""
    node = spec
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return ABSENT
        node = node[key]
    return node


ABSENT = object()

BAD_INPUTS = [
    BadInput(
        "typo",
        "misspelt field",
        "training.lerningRate",
        0.01,
        check="spec.training.lerningRate: unknown field",
        api="accept",
        kubectl="accept",
    ),
    BadInput(
        "unknown-top",
        "unknown field in spec",
        "colour",
        "blue",
        check="spec.colour: unknown field",
        api="accept",
        kubectl="accept",
    ),
    BadInput(
        "snake-case",
        "snake_case key",
        "evaluation.max_new_tokens",
        4,
        check="spec.evaluation.max_new_tokens: unknown field",
        api="accept",
        kubectl="accept",
    ),
    BadInput(
        "string-for-int",
        "number as a string",
        "evaluation.maxNewTokens",
        "32",
        check="spec.evaluation.maxNewTokens: Input should be a valid integer",
        api="reject",
        kubectl="reject",
        api_says="spec.evaluation.maxNewTokens in body must be of type integer",
    ),
    BadInput(
        "string-for-bool",
        "boolean as a string",
        "validation.requireSignificance",
        "yes",
        check="spec.validation.requireSignificance: Input should be a valid boolean",
        api="reject",
        kubectl="reject",
        api_says="spec.validation.requireSignificance in body must be of type boolean",
    ),
    BadInput(
        "fraction-for-int",
        "fraction for an integer",
        "evaluation.maxNewTokens",
        32.5,
        check="spec.evaluation.maxNewTokens: Input should be a valid integer",
        api="reject",
        kubectl="reject",
        api_says="spec.evaluation.maxNewTokens in body must be of type integer",
    ),
    BadInput(
        "string-for-list",
        "string for a list",
        "training.targetModules",
        "all-linear",
        check="spec.training.targetModules: Input should be a valid list",
        api="reject",
        kubectl="reject",
        api_says="spec.training.targetModules in body must be of type array",
    ),
    BadInput(
        "int-in-string-map",
        "number in a string map",
        "resources.trainer.nodeSelector",
        {"gpu": 1},
        check="spec.resources.trainer.nodeSelector.gpu: Input should be a valid string",
        api="reject",
        kubectl="reject",
        api_says="spec.resources.trainer.nodeSelector.gpu in body must be of type string",
    ),
    BadInput(
        "below-minimum",
        "below the minimum",
        "evaluation.maxNewTokens",
        0,
        check="spec.evaluation.maxNewTokens: Input should be greater than or equal to 1",
        api="reject",
        kubectl="reject",
        api_says="spec.evaluation.maxNewTokens in body should be greater than or equal to 1",
    ),
    BadInput(
        "negative",
        "negative count",
        "resources.trainer.gpus",
        -1,
        check="spec.resources.trainer.gpus: Input should be greater than or equal to 0",
        api="reject",
        kubectl="reject",
        api_says="spec.resources.trainer.gpus in body should be greater than or equal to 0",
    ),
    BadInput(
        "above-maximum",
        "above the maximum",
        "maxStepRetries",
        11,
        check="spec.maxStepRetries: Input should be less than or equal to 10",
        api="reject",
        kubectl="reject",
        api_says="spec.maxStepRetries in body should be less than or equal to 10",
    ),
    BadInput(
        "exclusive-bound",
        "on an exclusive bound",
        "training.replayFraction",
        1.0,
        check="spec.training.replayFraction: Input should be less than 1",
        api="reject",
        kubectl="reject",
        api_says="spec.training.replayFraction in body should be less than 1",
    ),
    BadInput(
        "bad-enum",
        "value outside the enum",
        "merge.combination",
        "average",
        check="spec.merge.combination: Input should be 'linear', 'cat', 'ties'",
        api="reject",
        kubectl="reject",
        api_says='spec.merge.combination: Unsupported value: "average"',
    ),
    BadInput(
        "empty-list",
        "empty list (at least one item)",
        "training.targetModules",
        [],
        check="spec.training.targetModules: List should have at least 1 item",
        api="reject",
        kubectl="reject",
        api_says="spec.training.targetModules in body should have at least 1 items",
    ),
    BadInput(
        "empty-string",
        "empty string (at least one character)",
        "training.extraData",
        "",
        check="spec.training.extraData: String should have at least 1 character",
        api="reject",
        kubectl="reject",
        api_says="spec.training.extraData in body should be at least 1 chars long",
    ),
    BadInput(
        "missing-required",
        "required key missing",
        "tracking.apiKeySecret",
        {"name": "wandb"},
        check="spec.tracking.apiKeySecret.key: Field required",
        api="reject",
        kubectl="reject",
        api_says="spec.tracking.apiKeySecret.key: Required value",
    ),
    BadInput(
        "null",
        "null for a field that is not nullable",
        "evaluation.suite",
        None,
        check="spec.evaluation.suite: Input should be a valid string",
        api="default",
        kubectl="accept",
    ),
    BadInput(
        "validator-only",
        "rule the schema cannot express",
        "model.name",
        "a b",
        check="spec.model.name: Value error, a model name or path must not contain whitespace",
        api="accept",
        kubectl="accept",
    ),
    BadInput(
        "string-for-rank",
        "number as a string (strict like the CRD)",
        "training.rank",
        "8",
        check="spec.training.rank: Input should be a valid integer",
        api="reject",
        kubectl="reject",
        api_says="spec.training.rank in body must be of type integer",
    ),
    BadInput(
        "bool-for-int",
        "boolean for an integer",
        "training.rank",
        True,
        check="spec.training.rank: Input should be a valid integer",
        api="reject",
        kubectl="reject",
        api_says="spec.training.rank in body must be of type integer",
    ),
    BadInput(
        "memory-not-quantity",
        "memory that is not a quantity",
        "resources.trainer.memory",
        "lots",
        check="spec.resources.trainer.memory: Value error, 'lots' is not a Kubernetes quantity",
        api="reject",
        kubectl="reject",
        api_says="spec.resources.trainer.memory in body should match",
    ),
    BadInput(
        "cpu-not-quantity",
        "CPU that is not a quantity",
        "resources.evaluator.cpu",
        "lots",
        check="spec.resources.evaluator.cpu: Value error, 'lots' is not a Kubernetes quantity",
        api="reject",
        kubectl="reject",
        api_says="spec.resources.evaluator.cpu in body should match",
    ),
    BadInput(
        "negative-quantity",
        "negative quantity as a number",
        "resources.trainer.cpu",
        -1,
        check="spec.resources.trainer.cpu: Value error, '-1' is not a Kubernetes quantity",
        api="accept",  # the pattern applies to strings only
        kubectl="accept",
    ),
    BadInput(
        "zero-quantity",
        "zero memory",
        "resources.trainer.memory",
        "0",
        check="spec.resources.trainer.memory: Value error, '0' must be more than zero",
        api="accept",
        kubectl="accept",
    ),
    BadInput(
        "empty-domain",
        "empty domain name (it meant every domain)",
        "evaluation.domains",
        [""],
        check="spec.evaluation.domains[0]: String should have at least 1 character",
        api="reject",
        kubectl="reject",
        api_says="spec.evaluation.domains",
    ),
    BadInput(
        "option-as-value",
        "value that starts like an option",
        "evaluation.suite",
        "--limit",
        check="spec.evaluation.suite: '--limit' is not valid: must not start with '-'",
        api="reject",
        kubectl="reject",
        api_says="spec.evaluation.suite in body should match '^[^-]'",
    ),
    BadInput(
        "long-label-value",
        "queue name longer than a label value",
        "queueName",
        "q" * 64,
        check="spec.queueName: String should have at most 63 characters",
        api="reject",
        kubectl="reject",
        api_says="spec.queueName in body should be at most 63 chars long",
    ),
    BadInput(
        "bad-label-value",
        "node selector value that is not a label value",
        "resources.trainer.nodeSelector",
        {"pool": "gpu pool"},
        check="spec.resources.trainer.nodeSelector.pool: 'gpu pool' is not valid: a label value",
        api="reject",
        kubectl="reject",
        api_says="spec.resources.trainer.nodeSelector.pool in body should match",
    ),
    BadInput(
        "bad-label-key",
        "node selector key that is not a label key",
        "resources.trainer.nodeSelector",
        {"gpu pool": "a"},
        check="spec.resources.trainer.nodeSelector.gpu pool.[key]: Value error, 'gpu pool' is not "
        "a valid label key",
        api="accept",  # a structural schema cannot constrain map keys
        kubectl="accept",
    ),
    BadInput(
        "bad-secret-name",
        "Secret name that is not a DNS subdomain",
        "hubTokenSecret",
        {"name": "HF_Token", "key": "token"},
        check="spec.hubTokenSecret.name: 'HF_Token' is not valid: a DNS-1123 subdomain",
        api="reject",
        kubectl="reject",
        api_says="spec.hubTokenSecret.name in body should match",
    ),
    BadInput(
        "image-with-space",
        "image reference with a space",
        "resources.trainer.image",
        "registry.example.com/kaizen trainer:1",
        check="spec.resources.trainer.image: 'registry.example.com/kaizen trainer:1' is not valid",
        api="reject",
        kubectl="reject",
        api_says="spec.resources.trainer.image in body should match",
    ),
    BadInput(
        "spec-not-object",
        "spec is not an object",
        "",
        "x",
        check="spec: Input should be a valid dictionary",
        api="reject",
        kubectl="reject",
        api_says="spec in body must be of type object",
    ),
]


def markdown_table() -> str:
    """The table as docs/kube-testing.md shows it."""
    api = {
        "reject": "rejects (422, names the field)",
        "prune": "**prunes it silently**",
        "default": "**drops the null, applies the default**",
        "accept": "stores it; the operator fails the cycle `InvalidSpec` naming the field",
    }
    lines = [
        "| input | example | `kaizen check` | API server (any client) | `kubectl apply` |",
        "|---|---|---|---|---|",
    ]
    for row in BAD_INPUTS:
        example = f"`spec.{row.path}: {yaml.safe_dump(row.value, default_flow_style=True).strip().removesuffix('...').strip()}`"
        if not row.path:
            example = f"`spec: {row.value}`"
        check = "error naming the field" if row.check else "**valid**"
        lines.append(f"| {row.what} | {example} | {check} | {api[row.api]} | {row.kubectl}s |")
    return "\n".join(lines)
