"""Tests of kaizen.evaluator."""
