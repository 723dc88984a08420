"""`benchmarks/restart_memory.py`: a restarted operator's memory over finished Jobs on the real
API server (the `apiserver` tier; skipped where it is not built)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.apiserver
def test_a_fresh_operator_over_finished_jobs_in_two_namespaces(tmp_path: Path) -> None:
    from tests.apiserver.server import find_binaries

    found = find_binaries()
    if isinstance(found, str):
        pytest.skip(f"no real kube-apiserver (the apiserver tier): {found}")
    out, reports = tmp_path / "restart.json", tmp_path / "reports"
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "restart_memory.py"), "--namespaces", "2",
         "--jobs", "6", "--chunk", "4", "--seconds", "15", "--reports", str(reports),
         "--json", str(out)],
        check=True, cwd=REPO,
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert (result["namespaces"], result["jobs_per_namespace"], result["chunk"]) == (2, 6, 4)
    assert result["job_json_bytes"] > 1000  # a Job with the server's managedFields
    rss = result["operator_rss_mib"]
    assert 0 < rss["end"] <= rss["peak"] == max(r for _, r in result["operator_rss_timeline"])
    # The operator lived through the reports asked of it (the script stops when it exits).
