"""Leader election as the chart runs it: replicas with `--peering` take distinct priorities.

kopf lets only the live peer with the highest priority work and pauses every peer that shares
the highest priority, so replicas of one Deployment (one command line) need priorities that
differ; `configure_kopf` derives each replica's from its pod name.
"""

from __future__ import annotations

import kopf

from kaizen.operator import handlers
from kaizen.operator.settings import OperatorSettings


def _peered(priority: int = 0, standalone: bool = False) -> kopf.OperatorSettings:
    # As `kopf run --peering=kaizen [--priority=N] [--standalone]` sets them.
    settings = kopf.OperatorSettings()
    settings.peering.name = "kaizen"
    settings.peering.mandatory = True
    settings.peering.priority = priority
    settings.peering.standalone = standalone
    return settings


def test_replicas_of_a_deployment_get_distinct_positive_priorities() -> None:
    names = [f"kaizen-7d9f8c6b5-{suffix}" for suffix in ("x2k4p", "q8m1z", "bb7wr", "t5n0c")]
    names += [f"kaizen-{i}" for i in range(200)]
    priorities = [handlers.replica_priority(name) for name in names]
    assert len(set(priorities)) == len(names)
    assert all(1 <= p < 2**31 for p in priorities)
    assert handlers.replica_priority("kaizen-0") == handlers.replica_priority("kaizen-0")


def test_named_peering_takes_the_replicas_priority() -> None:
    settings = _peered()
    handlers.configure_kopf(settings, OperatorSettings.from_env({}), pod_name="kaizen-abc-1")
    assert settings.peering.priority == handlers.replica_priority("kaizen-abc-1")
    other = _peered()
    handlers.configure_kopf(other, OperatorSettings.from_env({}), pod_name="kaizen-abc-2")
    assert other.peering.priority != settings.peering.priority


def test_explicit_priority_standalone_and_unnamed_peering_are_left_alone() -> None:
    explicit = _peered(priority=100)
    handlers.configure_kopf(explicit, OperatorSettings.from_env({}), pod_name="kaizen-abc-1")
    assert explicit.peering.priority == 100
    standalone = _peered(standalone=True)
    handlers.configure_kopf(standalone, OperatorSettings.from_env({}), pod_name="kaizen-abc-1")
    assert standalone.peering.priority == 0
    unnamed = kopf.OperatorSettings()  # `kopf run` without --peering: kopf's own behaviour
    handlers.configure_kopf(unnamed, OperatorSettings.from_env({}), pod_name="kaizen-abc-1")
    assert unnamed.peering.priority == 0


def test_the_peering_crds_comment_says_what_the_code_does() -> None:
    # The files once told users to give replicas distinct --priority values, which a
    # Deployment (one command line for every replica) cannot do; the code derives them.
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    for path in (
        repo / "manifests" / "operator" / "kopf-peering-crd.yaml",
        repo / "charts" / "kaizen" / "crds" / "kopf.dev_peerings.yaml",
    ):
        comment = " ".join(
            line.lstrip("# ") for line in path.read_text().splitlines() if line.startswith("#")
        )
        assert "replica_priority" in comment, path
        assert "leaving --priority unset" in comment, path
        assert "with distinct --priority values" not in comment, path
