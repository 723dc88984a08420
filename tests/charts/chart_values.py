"""The value sets the chart tests render the chart with (plain data: no Helm needed to import)."""

from __future__ import annotations

from typing import Any

VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "namespaced": {"watchNamespaces": ["team-a", "team-b"]},
    "replicas-3": {"replicaCount": 3},
    "replicas-3-namespaced": {"replicaCount": 3, "watchNamespaces": ["team-a"]},
    "existing-pvc": {"artifacts": {"existingClaim": "shared-nfs"}},
    "trainjob": {"trainJob": {"enabled": True}},
    "servicemonitor": {
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}}
    },
    "gpu-cluster": {
        "image": {"digest": "sha256:" + "a" * 64},
        "imagePullSecrets": [{"name": "regcred"}],
        "jobs": {
            "trainer": {"image": {"repository": "registry.local/kaizen-trainer", "tag": "cu124"}},
            "defaultResources": {"cpu": "4", "memory": "32Gi"},
            "queueName": "gpu-queue",
            "wandbApiKeySecret": {"name": "wandb", "key": "api-key"},
            "hubTokenSecret": {"name": "hf", "key": "token"},
        },
        "artifacts": {
            "storageClassName": "nfs",
            "accessModes": ["ReadWriteMany"],
            "size": "500Gi",
            "namespaces": ["ml-a", "ml-b"],
        },
        "priorityClassName": "system-cluster-critical",
        "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
        ],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "kaizen"}},
                        },
                    }
                ]
            }
        },
    },
}
