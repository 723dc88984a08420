"""User-controlled strings in a step's Job: passed on literally, and valid where they land.

Kubernetes expands `$(NAME)` in a container's command, args and env values from the
container's environment, which holds the Secrets; a Job's labels have Kubernetes' own limits.
The kubelet's expansion is played by the job simulator's `_expand` (the same rules as
`k8s.io/kubernetes/third_party/forked/golang/expansion`).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from kaizen.api import parse_spec
from kaizen.api.fields import LABEL_VALUE_MAX, LABEL_VALUE_PATTERN
from kaizen.cycle.catalog import kind_named
from kaizen.cycle.planner import StepPlanner, train_step_name
from kaizen.operator.jobs import CycleRef, build_step_job, cpu_threads, escape_expansion
from kaizen.operator.settings import OperatorSettings
from tests.kube.jobsim.kubelet import _expand

CYCLE = CycleRef(name="demo", namespace="team-a", uid="3f6c1d2e-0000-4000-8000-000000000001")
SETTINGS = OperatorSettings.from_env({})
SECRET_ENV = {"HF_TOKEN": "hf_planted_value", "WANDB_API_KEY": "wandb_planted_value"}
HOSTILE = [
    "$(HF_TOKEN)",
    "$$(HF_TOKEN)",
    "$$$(WANDB_API_KEY)",
    "a$(HF_TOKEN)b$",
    "$",
    "$$",
    "$(",
    "cost $5 (approx)",
]


def _spec(**overrides: Any) -> Any:
    base: dict[str, Any] = {
        "hubTokenSecret": {"name": "hf", "key": "token"},
        "tracking": {"mode": "online", "apiKeySecret": {"name": "wandb", "key": "api-key"}},
    }
    base.update(overrides)
    return parse_spec(base)


def _container(job: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = job["spec"]["template"]["spec"]["containers"][0]
    return container


@pytest.mark.parametrize("text", HOSTILE)
def test_escaping_is_undone_exactly_by_the_kubelets_expansion(text: str) -> None:
    assert _expand(escape_expansion(text), SECRET_ENV) == text


@pytest.mark.parametrize("text", HOSTILE)
def test_a_suite_or_model_name_reaches_the_step_literally(text: str) -> None:
    spec = _spec(
        model={"name": text.replace(" ", "")}, evaluation={"suite": text, "domains": [text]}
    )
    planner = StepPlanner(spec, namespace=CYCLE.namespace, cycle=CYCLE.name, artifact_root="/a")
    invocation = planner.evaluate_baseline()
    container = _container(build_step_job(CYCLE, invocation, spec, SETTINGS))
    argv = [_expand(arg, SECRET_ENV) for arg in container["command"]]
    assert argv[1:] == list(invocation.argv[1:])
    for secret in SECRET_ENV.values():
        assert not any(secret in arg for arg in argv)


def test_env_values_are_not_expanded_either() -> None:
    spec = _spec(
        tracking={
            "mode": "online",
            "project": "$(WANDB_API_KEY)",
            "entity": "$(HF_TOKEN)",
            "apiKeySecret": {"name": "wandb", "key": "api-key"},
        }
    )
    planner = StepPlanner(spec, namespace=CYCLE.namespace, cycle=CYCLE.name, artifact_root="/a")
    container = _container(build_step_job(CYCLE, planner.evaluate_baseline(), spec, SETTINGS))
    # The kubelet expands each value with the variables declared before it and the Secrets.
    declared = dict(SECRET_ENV)
    values = {}
    for item in container["env"]:
        if "value" in item:
            values[item["name"]] = _expand(item["value"], declared)
    assert values["WANDB_PROJECT"] == "$(WANDB_API_KEY)"
    assert values["WANDB_ENTITY"] == "$(HF_TOKEN)"


@pytest.mark.parametrize(
    "domain",
    [
        "a" * 200,
        "Very Long Domain Name With Spaces And Capitals " * 3,
        "lmeval:" + "x" * 80,
        "ends-with-dash-" + "-" * 70,
    ],
)
def test_labels_of_a_domain_step_are_valid_label_values(domain: str) -> None:
    spec = _spec()
    planner = StepPlanner(spec, namespace=CYCLE.namespace, cycle=CYCLE.name, artifact_root="/a")
    job = build_step_job(CYCLE, planner.train(domain, planner.plan_path()), spec, SETTINGS)
    labels = {**job["metadata"]["labels"], **job["spec"]["template"]["metadata"]["labels"]}
    for key, value in labels.items():
        assert len(value) <= LABEL_VALUE_MAX, (key, value)
        assert re.match(LABEL_VALUE_PATTERN, value), (key, value)
    # Cut names stay distinct (a digest of the whole name) and are the catalog's names.
    assert train_step_name(domain) != train_step_name(domain + "x")
    assert kind_named("train").step_name(domain) == train_step_name(domain)


@pytest.mark.parametrize(
    ("quantity", "threads"),
    [("2", 2), ("1.5", 1), ("500m", 1), ("4000m", 4), ("2k", 2000), ("1e1", 10)],
)
def test_torch_threads_parse_kubernetes_quantities(quantity: str, threads: int) -> None:
    assert cpu_threads(quantity) == threads


def test_a_cpu_setting_that_is_not_a_quantity_is_an_error_not_one_thread() -> None:
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        cpu_threads("lots")
