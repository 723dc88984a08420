"""Strict reading of a suite's files: `SuiteError` and typed field access by file, line and field.

Shared by the suite loader (`loader.py`) and the knowledge reader (`knowledge_file.py`), so
every problem in any suite file is reported the same way: `file:line: field: problem`.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from kaizen.api.runner import ConfigurationError


class SuiteError(ConfigurationError):
    """A suite that cannot be used; the message names file, line and field."""

    def __init__(
        self, path: Path | str, line: int | None, field_name: str | None, problem: str
    ) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        what = f"{field_name}: {problem}" if field_name else problem
        super().__init__(f"{where}: {what}")
        self.path = str(path)
        self.line = line
        self.field = field_name
        self.problem = problem


def _nfc(value: Any) -> Any:
    """`value` with every string in Unicode's composed form (NFC): "é" typed as "e" and a
    combining accent reads as the one letter, as models write it and as name rules read it."""
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, list):
        return [_nfc(v) for v in value]
    if isinstance(value, dict):
        return {_nfc(k): _nfc(v) for k, v in value.items()}
    return value


def utf8_line(path: Path | str, number: int, line: bytes) -> str:
    """Line `number` of `path` as text; SuiteError where it is not UTF-8 (a file saved as
    Latin-1 or UTF-16), naming the byte. The first line may open with a byte order mark."""
    try:
        return line.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as error:
        raise SuiteError(
            path,
            number,
            None,
            f"not UTF-8 text (byte {error.start + 1} of the line: {error.reason}); save the "
            "file as UTF-8",
        ) from None


def utf8_lines(path: Path | str, data: bytes, *, keepends: bool = False) -> list[str]:
    """The lines of `data` (the bytes of `path`) as text, each checked by `utf8_line`."""
    return [
        utf8_line(path, number, line)
        for number, line in enumerate(data.splitlines(keepends=keepends), start=1)
    ]


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """The JSON objects of `path` by line number (blank lines skipped), strings in NFC; a
    UTF-8 byte order mark (as some editors save) is read past, text in another encoding is
    refused at its line."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            raw = utf8_line(path, number, line)
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as error:
                raise SuiteError(
                    path, number, None, f"bad JSON: {error.msg} (column {error.colno})"
                ) from None
            if not isinstance(record, dict):
                raise SuiteError(
                    path, number, None, f"must be a JSON object, got {type(record).__name__}"
                )
            yield number, _nfc(record)


class Fields:
    """Typed field access on one record that reports problems as file:line: field."""

    _REQUIRED = object()

    def __init__(
        self,
        path: Path,
        line: int,
        record: dict[str, Any],
        allowed: set[str],
        lines: dict[str, int] | None = None,
        prefix: str = "",
    ) -> None:
        self.path, self.line, self.record, self.lines = path, line, record, lines or {}
        self.prefix = prefix
        for key in record:
            if key not in allowed:
                self.fail(key, f"unknown field; allowed: {', '.join(sorted(allowed))}")

    def fail(self, name: str, problem: str) -> NoReturn:
        raise SuiteError(self.path, self.lines.get(name, self.line), self.prefix + name, problem)

    def text(self, name: str, default: Any = _REQUIRED) -> Any:
        if name not in self.record or self.record[name] is None:
            if default is self._REQUIRED:
                self.fail(name, "missing")
            return default
        value = self.record[name]
        if not isinstance(value, str):
            self.fail(name, f"must be a string, got {type(value).__name__}")
        if not value.strip():
            self.fail(name, "empty")
        return value.strip()

    def choice(self, name: str, allowed: Sequence[str], default: Any = _REQUIRED) -> str:
        value = self.text(name, default)
        if value not in allowed:
            self.fail(
                name, f"unknown {name} {value!r}; declared in suite.yaml: {', '.join(allowed)}"
            )
        return str(value)

    def text_list(self, name: str, *, required: bool = False, unique: bool = False) -> list[str]:
        value = self.record.get(name)
        if value is None:
            if required:
                self.fail(name, "missing")
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.fail(name, "must be a list of non-empty strings")
        if required and not value:
            self.fail(name, "empty")
        values = [v.strip() for v in value]
        if unique and len(set(values)) != len(values):
            self.fail(name, "duplicate entries")
        return values
