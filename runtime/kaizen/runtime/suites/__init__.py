"""Evaluation suites: the loader (`loader.py`) and the suites shipped with Kaizen (`demo/`, `core/`).

A suite is a directory of `suite.yaml`, `eval.jsonl`, optional `train.jsonl` and optional
`knowledge.jsonl` (relations, facts and passages: `knowledge.py`, read by
`knowledge_file.py`) and optional documents (Markdown and text files read as passages:
`documents.py`); the folders beside this file are package data, found by name
(`load_suite("demo")`).
"""

from kaizen.runtime.suites.knowledge import Fact, Knowledge, Passage, Relation
from kaizen.runtime.suites.knowledge_file import KNOWLEDGE_FILE, read_knowledge
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
    "KNOWLEDGE_FILE",
    "SHIPPED_SUITES",
    "EvalItem",
    "Fact",
    "Knowledge",
    "Passage",
    "Relation",
    "Suite",
    "SuiteError",
    "TrainExample",
    "load_suite",
    "read_knowledge",
    "shipped_suites",
]
