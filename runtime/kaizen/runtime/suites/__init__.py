"""Evaluation suites: the loader (`loader.py`) and the suites shipped with Kaizen (`demo/`, `core/`).

A suite is a directory of `suite.yaml`, `eval.jsonl` and optional `train.jsonl`; the folders
beside this file are package data, found by name (`load_suite("demo")`).
"""

from kaizen.runtime.suites.loader import (
    CAPABILITIES,
    SHIPPED_SUITES,
    EvalItem,
    Suite,
    SuiteError,
    TrainExample,
    load_suite,
    shipped_suites,
)

__all__ = [
    "CAPABILITIES",
    "SHIPPED_SUITES",
    "EvalItem",
    "Suite",
    "SuiteError",
    "TrainExample",
    "load_suite",
    "shipped_suites",
]
