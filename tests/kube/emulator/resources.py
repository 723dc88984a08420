"""The resources the emulator knows: the Kaizen operator's standard set, and CRD registration."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import kmock

from tests.kube.emulator.common import ALL_VERBS


def _info(
    kind: str,
    singular: str,
    *,
    namespaced: bool = True,
    subresources: Iterable[str] = (),
    shortnames: Iterable[str] = (),
) -> kmock.ResourceInfo:
    return kmock.ResourceInfo(
        kind=kind,
        singular=singular,
        namespaced=namespaced,
        subresources=set(subresources),
        shortnames=set(shortnames),
        verbs=set(ALL_VERBS),
    )


STANDARD_RESOURCES: dict[str, kmock.ResourceInfo] = {
    "kaizen.dev/v1alpha1/improvementcycles": _info(
        "ImprovementCycle", "improvementcycle", subresources={"status"}
    ),
    "kaizen.dev/v1alpha1/improvementchains": _info(
        "ImprovementChain", "improvementchain", subresources={"status"}
    ),
    "batch/v1/jobs": _info("Job", "job", subresources={"status"}),
    "v1/pods": _info("Pod", "pod", subresources={"status", "log"}, shortnames={"po"}),
    "v1/events": _info("Event", "event", shortnames={"ev"}),
    "events.k8s.io/v1/events": _info("Event", "event", shortnames={"ev"}),
    "v1/secrets": _info("Secret", "secret"),
    "v1/configmaps": _info("ConfigMap", "configmap", shortnames={"cm"}),
    "v1/namespaces": _info("Namespace", "namespace", namespaced=False, shortnames={"ns"}),
}


def register_standard_resources(emulator: kmock.KubernetesEmulator) -> None:
    """Declare the resources the Kaizen operator uses, so discovery and requests know them."""
    for key, info in STANDARD_RESOURCES.items():
        emulator.resources[key] = copy.deepcopy(info)


def register_crd(emulator: kmock.KubernetesEmulator, crd: Mapping[str, Any]) -> list[str]:
    """Declare every served version of a CustomResourceDefinition manifest (a dict)."""
    spec = crd["spec"]
    names = spec["names"]
    keys = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        key = f"{spec['group']}/{version['name']}/{names['plural']}"
        emulator.resources[key] = _info(
            names["kind"],
            names.get("singular") or names["kind"].lower(),
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            subresources={s for s in (version.get("subresources") or {})},
            shortnames=names.get("shortNames") or (),
        )
        keys.append(key)
    return keys
