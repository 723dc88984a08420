"""Kaizen's evaluator: suites, batched generation, scoring, weakness analysis and A/B validation.

Run as `python -m kaizen.evaluator evaluate | analyze | validate` (see `cli.py`). Nothing is
imported here, so the CLI's `--help` and configuration errors stay fast (torch loads lazily).
"""
