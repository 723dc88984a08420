"""W&B with a key but no server to reach: the step's run goes offline and keeps its metrics.

The server is a local port that refuses connections (`WANDB_BASE_URL`), which is what a pod
without egress sees, whatever network the machine running the tests has.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from kaizen.runtime.tracking import server_unreachable, track
from tests.evaluator.test_tracking import read_run

pytest.importorskip("wandb")


@pytest.fixture
def closed_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_an_unreachable_server_is_named(closed_url: str) -> None:
    problem = server_unreachable(closed_url)
    assert problem is not None and closed_url in problem
    assert server_unreachable("not a url") is not None


def test_an_online_run_without_a_server_logs_offline(
    closed_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", closed_url)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    with track(
        mode="online",
        project="kaizen-test",
        cycle="demo",
        job_type="train",
        name="train-geography",
        config={"rank": 8},
        directory=tmp_path,
    ) as tracker:
        assert tracker.enabled, "the run was dropped instead of going offline"
        for step in range(3):
            tracker.log({"train/loss": 1.0 - step / 10}, step=step)
        tracker.summary({"final_loss": 0.8})

    warning = capsys.readouterr().err
    assert "logging offline" in warning and closed_url in warning

    run = read_run(tmp_path)
    assert (run["group"], run["job_type"], run["name"]) == ("demo", "train", "train-geography")
    assert run["config"]["rank"] == 8
    assert float(run["history"]["train/loss"]) == pytest.approx(0.8)
    assert float(run["summary"]["final_loss"]) == pytest.approx(0.8)
