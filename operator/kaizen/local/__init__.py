"""The local executor: runs an `ImprovementCycle` on this machine with the same steps as a cluster."""

from kaizen.local.executor import CycleResult, LocalExecutor, load_cycle_file

__all__ = ["CycleResult", "LocalExecutor", "load_cycle_file"]
