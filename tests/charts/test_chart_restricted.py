"""The chart's operator Pod meets the Pod Security Standard "restricted" profile, field by field.

The check itself (:func:`restricted_violations`) is tested too: it must catch violations.
"""

from __future__ import annotations

from typing import Any

from tests.charts.helm import (
    operator_deployment,
    render,
)

_RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
_SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}


def restricted_violations(template: dict[str, Any]) -> list[str]:
    """What in a pod template breaks the Pod Security Standard "restricted" (v1.32), check by check."""
    pod = template["spec"]
    annotations = template.get("metadata", {}).get("annotations") or {}
    pod_sc = pod.get("securityContext") or {}
    problems: list[str] = []
    # Baseline: host namespaces, host ports, hostPath, privileged, procMount, sysctls, AppArmor, SELinux.
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            problems.append(f"spec.{field}")
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl["name"] not in _SAFE_SYSCTLS:
            problems.append(f"sysctl {sysctl['name']}")
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']}: {sorted(kinds)}")
    if any(v == "unconfined" for v in annotations.values()):
        problems.append("AppArmor unconfined annotation")
    containers = (
        pod.get("initContainers", []) + pod["containers"] + pod.get("ephemeralContainers", [])
    )
    for c in containers:
        sc = c.get("securityContext") or {}
        where = f"container {c['name']}"
        if sc.get("privileged"):
            problems.append(f"{where}: privileged")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            problems.append(f"{where}: hostPort")
        if sc.get("procMount", "Default") != "Default":
            problems.append(f"{where}: procMount")
        for ctx in (pod_sc, sc):
            if (ctx.get("appArmorProfile") or {}).get("type") == "Unconfined":
                problems.append(f"{where}: AppArmor Unconfined")
            selinux = ctx.get("seLinuxOptions") or {}
            if selinux.get("type", "") not in (
                "",
                "container_t",
                "container_init_t",
                "container_kvm_t",
            ):
                problems.append(f"{where}: SELinux type")
            if selinux.get("user") or selinux.get("role"):
                problems.append(f"{where}: SELinux user/role")
            if (ctx.get("windowsOptions") or {}).get("hostProcess"):
                problems.append(f"{where}: hostProcess")
        # Restricted: no escalation, non-root, a seccomp profile, only NET_BIND_SERVICE added.
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation must be false")
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            problems.append(f"{where}: runAsNonRoot must be true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{where}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{where}: seccompProfile {seccomp}")
        capabilities = sc.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{where}: capabilities must drop ALL")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{where}: capabilities added")
    if pod_sc.get("runAsUser") == 0:
        problems.append("pod runAsUser 0")
    return problems


def test_operator_pod_meets_the_restricted_profile(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    name, objects = rendered
    deployment, container = operator_deployment(objects)
    assert restricted_violations(deployment["spec"]["template"]) == [], name
    # And beyond the profile: nothing writable but /tmp.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_restricted_check_catches_violations(chart: Any) -> None:
    deployment, _ = operator_deployment(render(chart))
    template = deployment["spec"]["template"]
    pod = template["spec"]
    pod["hostNetwork"] = True
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    pod["securityContext"] = {}
    sc = pod["containers"][0]["securityContext"]
    sc.update(privileged=True, allowPrivilegeEscalation=True, capabilities={"add": ["SYS_ADMIN"]})
    del sc["runAsNonRoot"], sc["seccompProfile"]
    problems = " | ".join(restricted_violations(template))
    for expected in (
        "hostNetwork",
        "volume host",
        "privileged",
        "allowPrivilegeEscalation",
        "runAsNonRoot",
        "seccompProfile",
        "drop ALL",
        "capabilities added",
    ):
        assert expected in problems
