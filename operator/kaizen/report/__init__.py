"""HTML reports with PNG plots for a cycle (its artifact directory) and a chain (its lineage).

`build_cycle_report(cycle_dir)` and `build_chain_report(lineage.json)` write `index.html` and
the PNGs beside it into a `report/` folder; `kaizen report` is their command line, `kaizen
run` and the validate step call them, and W&B gets the same PNGs. This package imports
`kaizen.api` and matplotlib only (import-linter): the step programs and the local executor
may use it, the operator image never imports it.
"""

from kaizen.report.chain import build_chain_report, read_lineage, render_chain
from kaizen.report.cycle import INDEX, BuiltReport, build_cycle_report, render_cycle
from kaizen.report.inputs import CycleInputs, ReportInputError, read_cycle

__all__ = [
    "INDEX",
    "BuiltReport",
    "CycleInputs",
    "ReportInputError",
    "build_chain_report",
    "build_cycle_report",
    "read_cycle",
    "read_lineage",
    "render_chain",
    "render_cycle",
]
