"""Shared pydantic base classes for the Kaizen API: camelCase aliases, strict spec fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """A model of the Kubernetes-facing API: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        validate_assignment=True,
    )

    def to_wire(self) -> dict[str, object]:
        """The JSON-compatible dict with camelCase keys and without unset optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SpecModel(ApiModel):
    """A part of the spec: types are strict, as in the CRD's schema (`"8"` is not a number,
    `true` is not one either)."""

    model_config = ConfigDict(strict=True)
