"""The ML runtime shared by the evaluator and the trainer: model loading, suites, scoring, tracking.

Both step programs import it; it imports `kaizen.api` and nothing else of `kaizen`, and it
never imports the operator, the cycle engine or the local executor.
"""
