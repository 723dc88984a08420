"""The base of every artifact model: versioned `Artifact` files, their parts, reading and writing.

`kaizen.api.artifacts` is the public face (it re-exports everything here); this module holds
what every artifact module shares, so that each file's models can live in a module of its own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kaizen.api.summary import atomic_write_json

#: The key that holds an artifact's layout version in every file.
VERSION_KEY = "schema"
#: JSON Schema dialect of the published schemas.
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

Verdict = Literal["Promote", "Reject", "Inconclusive"]
#: Why a wrong answer failed, in the order the analyze step tests them (the first that applies).
FailureKind = Literal["empty", "refusal", "repetition", "truncated", "wrong_format", "wrong_answer"]
#: Whether a failed item needed one fact (`knowledge`) or a combination of facts (`reasoning`).
FailureType = Literal["knowledge", "reasoning"]
#: What a domain lacks: single facts, their combination, or neither.
Hint = Literal["knowledge", "reasoning", "none"]
#: How a 95% interval of a mean score was computed.
IntervalMethod = Literal["wilson", "bootstrap"]
#: The paired test of a comparison: exact McNemar for right/wrong scores, else sign-flip permutation.
PairedTest = Literal["mcnemar_exact", "paired_permutation"]
Interval = tuple[float, float]


class ArtifactError(ValueError):
    """An artifact file that cannot be used: missing, not JSON, of an unknown version or layout."""


def _omitted_when_none(value: object) -> bool:
    return value is None


def _drop_null(schema: dict[str, Any]) -> None:
    """JSON Schema of a field that is left out rather than written as null."""
    options = [option for option in schema.pop("anyOf", []) if option != {"type": "null"}]
    if len(options) == 1:
        schema.update(options[0])
    elif options:
        schema["anyOf"] = options
    schema.pop("default", None)


def optional_key() -> Any:
    """A field that is absent from the file (not `null`) when it does not apply."""
    return Field(default=None, exclude_if=_omitted_when_none, json_schema_extra=_drop_null)


class Record(BaseModel):
    """A part of an artifact: snake_case keys exactly as in the file, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


def _require_version(schema: dict[str, Any]) -> None:
    # The version has a default so that writers need not pass it, but a file must have it.
    required = schema.setdefault("required", [])
    if VERSION_KEY not in required:
        required.insert(0, VERSION_KEY)


class Artifact(Record):
    """A whole artifact file. Subclasses set `FILE_NAME`, `KIND` and a `Literal` version field."""

    model_config = ConfigDict(serialize_by_alias=True, json_schema_extra=_require_version)

    FILE_NAME: ClassVar[str]
    """The file's name in a step's artifact directory."""
    KIND: ClassVar[str]
    """What the file is, in words, for error messages."""
    SCHEMA_VERSION: ClassVar[int]
    """The layout version this Kaizen writes and reads (from the `schema_version` field's type)."""
    UPGRADES: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {}
    """Older versions still read, each with the function that turns such a file into the
    current layout (before validation)."""

    schema_version: int = Field(alias="schema")
    """Layout version of the file (subclasses narrow it to `Literal[N]`)."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # The version is written once, as the field's Literal type (a `const` in the schema).
        field = cls.model_fields["schema_version"]
        (cls.SCHEMA_VERSION,) = get_args(field.annotation)
        if field.alias != VERSION_KEY or field.default != cls.SCHEMA_VERSION:
            raise TypeError(f"{cls.__name__}.schema_version: alias {VERSION_KEY!r}, default N")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, exactly as `write_artifact` writes it."""
        return self.model_dump(mode="json")


# -- shared parts ----------------------------------------------------------------------------


class SuiteRef(Record):
    """The evaluation suite a file was made from."""

    name: str
    """Suite name."""
    version: str
    """Suite version (from its `suite.yaml`)."""
    digest: str
    """`sha256:<hex>` of the selected items: equal digests mean identical questions and scorers."""
    path: str
    """The suite's folder when it was loaded."""


class EvaluatedModel(Record):
    """The model an evaluation scored."""

    name: str
    """Model reference (`bundled:<name>`, a hub id or a folder)."""
    revision: str | None
    """Hub revision, when one was pinned."""
    adapters: list[str]
    """LoRA adapter folders applied on top, in order."""


class ModelRef(Record):
    """The base model a training or merge step loaded."""

    ref: str
    """Model reference (`bundled:<name>`, a hub id or a folder)."""
    revision: str | None
    """Hub revision, when one was pinned."""
    adapters: list[str]
    """LoRA adapter folders applied before this step, in order (merged into the base; a folder
    of routed adapters, routes.json, applied prompt by prompt)."""


A = TypeVar("A", bound=Artifact)


# -- reading and writing ---------------------------------------------------------------------


def write_artifact(path: str | os.PathLike[str], artifact: Artifact) -> Path:
    """Write `artifact` as indented JSON to `path`, atomically (temp file and rename)."""
    return atomic_write_json(path, artifact.to_dict())


def _problems(error: ValidationError, limit: int = 5) -> str:
    found = error.errors()
    shown = [
        f"{'.'.join(str(part) for part in problem['loc']) or '(top level)'}: {problem['msg']}"
        for problem in found[:limit]
    ]
    more = f" (and {len(found) - limit} more)" if len(found) > limit else ""
    return "; ".join(shown) + more


def check_version(raw: object, model: type[Artifact], where: str) -> None:
    """Raise `ArtifactError` unless `raw` is a JSON object of the version `model` reads."""
    kind, known = model.KIND, model.SCHEMA_VERSION
    if not isinstance(raw, dict):
        raise ArtifactError(f"{where}: {kind} must be a JSON object, got {type(raw).__name__}")
    if VERSION_KEY not in raw:
        raise ArtifactError(
            f'{where}: {kind} without a schema version (no "{VERSION_KEY}" key); Kaizen writes '
            f'one in every artifact: a file that follows version {known} needs "{VERSION_KEY}": {known}'
        )
    version = raw[VERSION_KEY]
    if isinstance(version, bool) or not isinstance(version, int):
        raise ArtifactError(
            f"{where}: {kind} schema version {version!r} is not an integer (this Kaizen reads {known})"
        )
    if version > known:
        raise ArtifactError(
            f"{where}: {kind} schema version {version} is newer than this Kaizen reads ({known}); "
            "upgrade Kaizen"
        )
    if version != known and version not in model.UPGRADES:
        raise ArtifactError(
            f"{where}: unknown {kind} schema version {version} (this Kaizen reads {known})"
        )


def parse_artifact(raw: object, model: type[A], where: str = "<data>") -> A:
    """Validate a parsed JSON value as `model`, version first; `ArtifactError` names `where`."""
    check_version(raw, model, where)
    assert isinstance(raw, dict)
    upgrade = model.UPGRADES.get(raw[VERSION_KEY])
    if upgrade is not None:
        raw = upgrade(raw)
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise ArtifactError(
            f"{where}: not valid {model.KIND} (schema version {model.SCHEMA_VERSION}): "
            f"{_problems(error)}"
        ) from None


def read_artifact(path: str | os.PathLike[str], model: type[A]) -> A:
    """Read and validate one artifact file; `ArtifactError` (naming the file) when unusable."""
    target = Path(path)
    kind = model.KIND
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtifactError(f"{target}: {kind} file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{target}: cannot read {kind}: {error}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ArtifactError(f"{target}:{error.lineno}: invalid JSON: {error.msg}") from None
    return parse_artifact(raw, model, str(target))
