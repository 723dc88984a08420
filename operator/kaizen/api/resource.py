"""The `ImprovementCycle` resource as a whole, and parsing with errors that name the field."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kaizen.api.fields import DNS_LABEL_MAX, DNS_LABEL_PATTERN, PATTERN_MEANINGS
from kaizen.api.spec import ImprovementCycleSpec
from kaizen.api.status import ImprovementCycleStatus

GROUP = "kaizen.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ImprovementCycle"
PLURAL = "improvementcycles"
SINGULAR = "improvementcycle"
SHORT_NAMES = ["ic", "cycle"]


class ObjectMeta(BaseModel):
    """The part of `metadata` Kaizen reads; everything else is kept as is."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str = Field(min_length=1, max_length=DNS_LABEL_MAX, pattern=DNS_LABEL_PATTERN)
    # Both become folders of `kaizen run` (`<artifacts>/<namespace>/<name>/`): a DNS label
    # cannot hold `/` or `..`, so it cannot lead outside the artifact root.
    namespace: str = Field(
        default="default", min_length=1, max_length=DNS_LABEL_MAX, pattern=DNS_LABEL_PATTERN
    )
    generation: int | None = None
    uid: str | None = None


class ImprovementCycle(BaseModel):
    """An `ImprovementCycle` object: metadata, spec and (optional) status."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str = KIND
    metadata: ObjectMeta
    spec: ImprovementCycleSpec = Field(default_factory=ImprovementCycleSpec)
    status: ImprovementCycleStatus | None = None


class SpecError(ValueError):
    """A cycle that cannot be run as written; the message names every offending field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def _location(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts)


def format_validation_error(error: ValidationError, prefix: str = "") -> list[str]:
    """One `field.path: message` line per problem."""
    lines = []
    for problem in error.errors():
        where = _location(tuple(problem["loc"]))
        where = f"{prefix}.{where}" if prefix and where else (prefix or where)
        message = problem["msg"]
        if problem["type"] == "extra_forbidden":
            message = "unknown field"
        elif problem["type"] == "string_pattern_mismatch":
            pattern = str((problem.get("ctx") or {}).get("pattern", ""))
            meaning = PATTERN_MEANINGS.get(pattern)
            if meaning:
                message = f"{problem['input']!r} is not valid: {meaning}"
        lines.append(f"{where}: {message}")
    return lines


def parse_spec(spec: dict[str, Any] | None) -> ImprovementCycleSpec:
    """Validate a spec dict (camelCase keys) or raise `SpecError` naming the fields."""
    try:
        return ImprovementCycleSpec.model_validate(spec or {}, by_alias=True, by_name=False)
    except ValidationError as error:
        raise SpecError(format_validation_error(error, "spec")) from None


def parse_cycle(obj: dict[str, Any]) -> ImprovementCycle:
    """Validate a whole object (as read from YAML or the API) or raise `SpecError`."""
    if not isinstance(obj, dict):
        raise SpecError(["the document is not a mapping"])
    problems = []
    if obj.get("apiVersion") != API_VERSION:
        problems.append(f"apiVersion: expected {API_VERSION!r}, got {obj.get('apiVersion')!r}")
    if obj.get("kind") != KIND:
        problems.append(f"kind: expected {KIND!r}, got {obj.get('kind')!r}")
    if problems:
        raise SpecError(problems)
    try:
        cycle = ImprovementCycle.model_validate({**obj, "spec": {}, "status": None})
    except ValidationError as error:
        raise SpecError(format_validation_error(error)) from None
    spec = parse_spec(obj.get("spec"))
    status = None
    if obj.get("status"):
        try:
            status = ImprovementCycleStatus.model_validate(obj["status"])
        except ValidationError as error:
            raise SpecError(format_validation_error(error, "status")) from None
    return cycle.model_copy(update={"spec": spec, "status": status})


def with_namespace(cycle: ImprovementCycle, namespace: str) -> ImprovementCycle:
    """`cycle` moved to `namespace`, which must be a DNS-1123 label like any namespace."""
    try:
        metadata = ObjectMeta.model_validate(
            {**cycle.metadata.model_dump(exclude_unset=True), "namespace": namespace}
        )
    except ValidationError as error:
        raise SpecError(format_validation_error(error, "metadata")) from None
    return cycle.model_copy(update={"metadata": metadata})
