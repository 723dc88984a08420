"""Where a cycle's step pods run: image, GPUs, CPU and memory, node selection, tolerations,
affinity and priority (`spec.resources`), as Kubernetes fields the Job builder passes on."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic.config import JsonDict

from kaizen.api import fields as f
from kaizen.api._base import SpecModel


class Toleration(SpecModel):
    """A Kubernetes toleration (core/v1 `Toleration`) added to a step's pods."""

    key: str | None = Field(default=None, min_length=1)
    """Taint key the toleration matches; empty with `operator: Exists` matches every taint."""

    operator: Literal["Exists", "Equal"] = "Equal"
    """`Equal` matches the taint's value; `Exists` matches any value of the key."""

    value: str | None = None
    """Taint value for `operator: Equal`."""

    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect matched; every effect when empty."""

    toleration_seconds: int | None = Field(default=None, ge=0)
    """How long a pod stays bound to a node tainted `NoExecute` (only with that effect)."""

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("a toleration with operator Exists must not set value")
        if self.key is None and self.operator != "Exists":
            raise ValueError("a toleration without key must use operator Exists")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("tolerationSeconds needs effect NoExecute")
        return self


_PRESERVE: JsonDict = {"x-kubernetes-preserve-unknown-fields": True}


class Affinity(SpecModel):
    """Pod affinity rules (core/v1 `Affinity`), passed to the step's pods as written."""

    node_affinity: dict[str, Any] | None = Field(default=None, json_schema_extra=_PRESERVE)
    """`nodeAffinity` of the pod spec (e.g. `requiredDuringSchedulingIgnoredDuringExecution`)."""

    pod_affinity: dict[str, Any] | None = Field(default=None, json_schema_extra=_PRESERVE)
    """`podAffinity` of the pod spec."""

    pod_anti_affinity: dict[str, Any] | None = Field(default=None, json_schema_extra=_PRESERVE)
    """`podAntiAffinity` of the pod spec."""


class StepResources(SpecModel):
    """Image and resources of the Jobs that run one kind of step."""

    image: f.Image | None = None
    """Container image; the operator's default for this kind of step when empty."""

    gpus: int = Field(default=0, ge=0, le=64)
    """`nvidia.com/gpu` requested and limited."""

    cpu: f.Quantity | None = None
    """CPU request, a Kubernetes quantity, e.g. `4` or `500m`."""

    memory: f.Quantity | None = None
    """Memory request and limit, a Kubernetes quantity, e.g. `32Gi`."""

    node_selector: dict[f.LabelKey, f.LabelValue] = Field(default_factory=dict)
    """Node labels the Job's pod must match."""

    tolerations: list[Toleration] = Field(default_factory=list)
    """Tolerations of the step's pods, added to the `nvidia.com/gpu` toleration that GPU
    steps get anyway."""

    affinity: Affinity | None = None
    """Affinity of the step's pods (node affinity, pod affinity and anti-affinity)."""

    priority_class_name: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
    )
    """PriorityClass of the step's pods (scheduling priority and preemption). A `trainjob`
    train step's pods take the priority of their training runtime instead (docs/deploy.md)."""


class ResourcesSpec(SpecModel):
    """Resources of the evaluator and trainer Jobs."""

    evaluator: StepResources = Field(default_factory=StepResources)
    """Evaluate, analyze and validate steps (its `gpus` go to the steps that load a model;
    analyze and validate request none)."""

    trainer: StepResources = Field(default_factory=StepResources)
    """Train and merge steps."""
