"""One set of API behaviours, asserted on the emulator and on the real API server alike.

Each test runs twice: ``[emulator]`` (tests/kube/, in the fast tier) and ``[apiserver]`` (the real
kube-apiserver, marked ``apiserver``). Both go through the official client over HTTP, so a test
that passes on the real server and fails on the emulator is an emulator bug (or the reverse: a
behaviour the emulator invents). Behaviours the two are known to do differently are tested in
tests/apiserver/test_differences.py and listed in docs/kube-testing.md.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import kubernetes
import pytest
from kubernetes.client.rest import ApiException

from tests.apiserver.backends import Backend, G, P, V, cycle
from tests.kube.cluster import wait_for


def test_create_answers_201_and_stamps_metadata(backend: Backend) -> None:
    co, ns = backend.co, backend.namespace
    body, status, _ = co.create_namespaced_custom_object_with_http_info(G, V, ns, P, cycle("c1"))
    assert status == 201
    meta = body["metadata"]
    assert meta["namespace"] == ns
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1 and int(meta["resourceVersion"]) > 0
    assert co.get_namespaced_custom_object(G, V, ns, P, "c1") == body
    with pytest.raises(ApiException) as err:
        co.create_namespaced_custom_object(G, V, ns, P, cycle("c1"))
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "AlreadyExists"


def test_generate_name(backend: Backend) -> None:
    a = backend.core.create_namespaced_config_map(
        backend.namespace, {"metadata": {"generateName": "cm-"}}
    )
    b = backend.core.create_namespaced_config_map(
        backend.namespace, {"metadata": {"generateName": "cm-"}}
    )
    assert a.metadata.name.startswith("cm-") and len(a.metadata.name) == 8
    assert a.metadata.name != b.metadata.name


def test_create_drops_status_and_lists_have_kind(backend: Backend) -> None:
    co, ns = backend.co, backend.namespace
    assert "status" not in co.create_namespaced_custom_object(
        G, V, ns, P, dict(cycle("c1"), status={"phase": "Hacked"})
    )
    listed = co.list_namespaced_custom_object(G, V, ns, P)
    assert listed["kind"] == "ImprovementCycleList" and listed["apiVersion"] == f"{G}/{V}"
    assert int(listed["metadata"]["resourceVersion"]) >= 1
    assert [i["metadata"]["name"] for i in listed["items"]] == ["c1"]
    assert co.list_namespaced_custom_object(G, V, "elsewhere", P)["items"] == []
    pods = backend.core.list_namespaced_pod(ns)
    assert pods.items == [] and pods.metadata.resource_version.isdigit()


def test_label_and_field_selectors(backend: Backend) -> None:
    core, ns = backend.core, backend.namespace
    for name, labels in [("a", {"job-name": "j1", "x": "1"}), ("b", {"job-name": "j2"}), ("c", {})]:
        core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": labels}})

    def names(**kw: str) -> list[str]:
        return sorted(
            i.metadata.name
            for i in core.list_namespaced_config_map(ns, **kw).items
            if i.metadata.name in "abc"  # a real namespace also holds kube-root-ca.crt (1.20+)
        )

    assert names(label_selector="job-name=j1") == ["a"]
    assert names(label_selector="job-name==j2") == ["b"]
    assert names(label_selector="job-name") == ["a", "b"]
    assert names(label_selector="!job-name") == ["c"]
    assert names(label_selector="job-name!=j1") == ["b", "c"]
    assert names(label_selector="job-name in (j1,j2),x") == ["a"]
    assert names(label_selector="job-name notin (j1)") == ["b", "c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b") == ["a", "c"]


def test_merge_patch_generation_and_status_split(backend: Backend) -> None:
    co, ns = backend.co, backend.namespace
    co.create_namespaced_custom_object(
        G, V, ns, P, cycle("c1", model={"name": "m"}, evaluation={"domains": ["a", "b"]})
    )
    patched = co.patch_namespaced_custom_object(
        G, V, ns, P, "c1", {"metadata": {"labels": {"x": "y"}}}
    )
    assert patched["metadata"]["generation"] == 1  # metadata only
    patched = co.patch_namespaced_custom_object(
        G, V, ns, P, "c1", {"spec": {"evaluation": {"domains": ["c"]}}, "status": {"phase": "Nope"}}
    )
    assert patched["metadata"]["generation"] == 2
    assert patched["spec"]["evaluation"]["domains"] == ["c"]  # lists are replaced
    assert "status" not in patched  # the main object ignores status

    rv = patched["metadata"]["resourceVersion"]
    patched = co.patch_namespaced_custom_object_status(
        G, V, ns, P, "c1", {"status": {"phase": "Evaluating"}, "spec": {"model": {"name": "other"}}}
    )
    assert patched["status"] == {"phase": "Evaluating"}
    assert patched["spec"]["model"]["name"] == "m"  # /status ignores spec
    assert patched["metadata"]["generation"] == 2  # status never bumps generation
    assert int(patched["metadata"]["resourceVersion"]) > int(rv)

    # A no-op write changes nothing, not even the resourceVersion.
    same = co.patch_namespaced_custom_object_status(
        G, V, ns, P, "c1", {"status": {"phase": "Evaluating"}}
    )
    assert same["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]


def test_json_patch_test_op_on_resource_version(backend: Backend) -> None:
    co, ns = backend.co, backend.namespace
    obj = co.create_namespaced_custom_object(G, V, ns, P, cycle("c1"))
    ops = [
        {
            "op": "test",
            "path": "/metadata/resourceVersion",
            "value": obj["metadata"]["resourceVersion"],
        },
        {"op": "add", "path": "/metadata/finalizers", "value": ["kaizen.dev/x"]},
    ]
    jp = {"_content_type": "application/json-patch+json"}
    patched = co.patch_namespaced_custom_object(G, V, ns, P, "c1", ops, **jp)
    assert patched["metadata"]["finalizers"] == ["kaizen.dev/x"]
    with pytest.raises(ApiException) as err:
        co.patch_namespaced_custom_object(G, V, ns, P, "c1", ops, **jp)  # stale rv
    assert err.value.status == 422
    stored = co.get_namespaced_custom_object(G, V, ns, P, "c1")
    assert stored["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]
    co.patch_namespaced_custom_object(G, V, ns, P, "c1", {"metadata": {"finalizers": None}})


def test_stale_resource_version_is_409_and_put_replaces(backend: Backend) -> None:
    co, ns = backend.co, backend.namespace
    obj = co.create_namespaced_custom_object(G, V, ns, P, cycle("c1"))
    fresh = co.patch_namespaced_custom_object(G, V, ns, P, "c1", {"spec": {"model": {"name": "n"}}})
    stale = dict(obj, spec={"model": {"name": "stale"}})
    with pytest.raises(ApiException) as err:
        co.replace_namespaced_custom_object(G, V, ns, P, "c1", stale)
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "Conflict"
    with pytest.raises(ApiException) as err:
        co.patch_namespaced_custom_object(
            G,
            V,
            ns,
            P,
            "c1",
            {
                "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                "spec": {"queueName": "q"},
            },
        )
    assert err.value.status == 409
    replaced = co.replace_namespaced_custom_object(
        G, V, ns, P, "c1", dict(fresh, spec={"queueName": "other"})
    )
    assert replaced["spec"]["queueName"] == "other" and "model" not in replaced["spec"]
    assert replaced["metadata"]["generation"] == 3
    assert replaced["metadata"]["uid"] == obj["metadata"]["uid"]


def test_strategic_merge_patch_is_refused_for_custom_resources(backend: Backend) -> None:
    co, ns = backend.co, backend.namespace
    co.create_namespaced_custom_object(G, V, ns, P, cycle("c1"))
    with pytest.raises(ApiException) as err:
        co.patch_namespaced_custom_object(
            G,
            V,
            ns,
            P,
            "c1",
            {"spec": {"queueName": "q"}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert err.value.status == 415


class Watcher(threading.Thread):
    """Watches the cycles of a namespace from a resourceVersion, and watches again from the
    last one it saw whenever the stream ends (as kopf and the job simulator do)."""

    def __init__(
        self, co: kubernetes.client.CustomObjectsApi, namespace: str, resource_version: str
    ):
        super().__init__(daemon=True)
        self.co, self.namespace, self.rv = co, namespace, resource_version
        self.events: list[tuple[str, str, str]] = []
        self.streams = 0
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.start()

    def run(self) -> None:
        deadline = time.monotonic() + 120  # bounded, whatever happens to the server
        while not self.stop.is_set() and time.monotonic() < deadline:
            self.streams += 1
            try:
                for event in kubernetes.watch.Watch().stream(
                    self.co.list_namespaced_custom_object,
                    G,
                    V,
                    self.namespace,
                    P,
                    resource_version=self.rv,
                    timeout_seconds=2,
                    _request_timeout=30,
                ):
                    obj = event["object"]
                    self.rv = obj["metadata"]["resourceVersion"]
                    phase = (obj.get("status") or {}).get("phase", "")
                    self.events.append((event["type"], obj["metadata"]["name"], phase))
            except Exception as error:  # noqa: BLE001 - the server went away: watch again
                self.errors.append(repr(error))
                self.stop.wait(0.2)

    def seen(self, count: int, what: str) -> list[tuple[str, str, str]]:
        return wait_for(lambda: list(self.events), lambda e: len(e) >= count, what=what)


def test_watch_replays_after_a_resource_version_and_resumes_where_it_ended(
    backend: Backend,
) -> None:
    co, ns = backend.co, backend.namespace
    a = co.create_namespaced_custom_object(G, V, ns, P, cycle("a"))
    co.create_namespaced_custom_object(G, V, ns, P, cycle("b"))
    co.patch_namespaced_custom_object_status(G, V, ns, P, "b", {"status": {"phase": "Training"}})
    watcher = Watcher(co, ns, a["metadata"]["resourceVersion"])
    try:
        # Only what happened after the given resourceVersion, in order.
        assert watcher.seen(2, "the replayed events") == [
            ("ADDED", "b", ""),
            ("MODIFIED", "b", "Training"),
        ]
        co.patch_namespaced_custom_object_status(G, V, ns, P, "a", {"status": {"phase": "Merging"}})
        watcher.seen(3, "a live change")
        # The stream ends (timeoutSeconds); the watcher watches again from its last
        # resourceVersion and gets what follows: nothing lost, nothing twice.
        streams = watcher.streams
        wait_for(lambda: watcher.streams, lambda n: n > streams, what="the next watch stream")
        co.patch_namespaced_custom_object_status(
            G, V, ns, P, "a", {"status": {"phase": "Validating"}}
        )
        co.delete_namespaced_custom_object(G, V, ns, P, "b")
        events = watcher.seen(5, "the changes after the stream ended")
        assert events == [
            ("ADDED", "b", ""),
            ("MODIFIED", "b", "Training"),
            ("MODIFIED", "a", "Merging"),
            ("MODIFIED", "a", "Validating"),
            ("DELETED", "b", "Training"),
        ]
        assert not watcher.errors
    finally:
        watcher.stop.set()
        watcher.join(timeout=30)
    assert not watcher.is_alive()


def test_after_a_restart_a_watch_from_before_it_is_gone(backend: Backend) -> None:
    co, ns = backend.co, backend.namespace
    co.create_namespaced_custom_object(G, V, ns, P, cycle("a"))
    before = co.list_namespaced_custom_object(G, V, ns, P)["metadata"]["resourceVersion"]
    co.patch_namespaced_custom_object_status(G, V, ns, P, "a", {"status": {"phase": "Evaluating"}})
    backend.core.create_namespaced_config_map(ns, {"metadata": {"name": "later"}})
    backend.restart()
    # The watch history did not survive the restart: a watch from before it is not replayed
    # but answered 410 Gone, and the client must list again (kopf and the simulator do).
    with pytest.raises(ApiException) as err:
        for _ in kubernetes.watch.Watch().stream(
            co.list_namespaced_custom_object,
            G,
            V,
            ns,
            P,
            resource_version=before,
            timeout_seconds=2,
        ):
            pass
    assert err.value.status == 410
    listed = co.list_namespaced_custom_object(G, V, ns, P)
    (obj,) = listed["items"]
    assert obj["status"]["phase"] == "Evaluating"  # nothing was lost: etcd kept it
    watcher = Watcher(co, ns, listed["metadata"]["resourceVersion"])
    try:
        co.patch_namespaced_custom_object_status(
            G, V, ns, P, "a", {"status": {"phase": "Analyzing"}}
        )
        assert watcher.seen(1, "a change after the restart") == [("MODIFIED", "a", "Analyzing")]
    finally:
        watcher.stop.set()
        watcher.join(timeout=30)


def test_watch_without_resource_version_starts_with_the_current_objects(backend: Backend) -> None:
    co, ns = backend.co, backend.namespace
    co.create_namespaced_custom_object(G, V, ns, P, cycle("a"))
    co.create_namespaced_custom_object(G, V, ns, P, cycle("b"))
    stream = kubernetes.watch.Watch().stream(
        co.list_namespaced_custom_object, G, V, ns, P, label_selector="team=a", timeout_seconds=1
    )
    events = sorted((e["type"], e["object"]["metadata"]["name"]) for e in stream)
    assert events == [("ADDED", "a"), ("ADDED", "b")]


def _owned(owner: dict[str, Any], kind: str, api_version: str) -> list[dict[str, Any]]:
    meta = owner["metadata"]
    return [
        {
            "apiVersion": api_version,
            "kind": kind,
            "name": meta["name"],
            "uid": meta["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


POD_SPEC = {"containers": [{"name": "main", "image": "x"}], "restartPolicy": "Never"}


def _tree(backend: Backend) -> None:
    """A cycle owning a Job owning a Pod, as the operator and the Job controller make them."""
    ns = backend.namespace
    c = backend.co.create_namespaced_custom_object(G, V, ns, P, cycle("c1"))
    job = backend.batch.create_namespaced_job(
        ns,
        {
            "metadata": {
                "name": "j1",
                "labels": {"kaizen.dev/cycle": "c1"},
                "ownerReferences": _owned(c, "ImprovementCycle", f"{G}/{V}"),
            },
            "spec": {"template": {"spec": POD_SPEC}},
        },
    )
    backend.core.create_namespaced_pod(
        ns,
        {
            "metadata": {
                "name": "j1-abcde",
                "ownerReferences": _owned(
                    {"metadata": {"name": "j1", "uid": job.metadata.uid}}, "Job", "batch/v1"
                ),
            },
            "spec": POD_SPEC,
        },
    )


def _names(backend: Backend) -> tuple[list[str], list[str], list[str]]:
    ns = backend.namespace
    return (
        [
            c["metadata"]["name"]
            for c in backend.co.list_namespaced_custom_object(G, V, ns, P)["items"]
        ],
        [j.metadata.name for j in backend.batch.list_namespaced_job(ns).items],
        [p.metadata.name for p in backend.core.list_namespaced_pod(ns).items],
    )


@pytest.mark.parametrize("policy", [None, "Background", "Foreground"])
def test_deleting_the_owner_deletes_its_dependents(backend: Backend, policy: str | None) -> None:
    _tree(backend)
    body = kubernetes.client.V1DeleteOptions(propagation_policy=policy) if policy else None
    backend.co.delete_namespaced_custom_object(G, V, backend.namespace, P, "c1", body=body)
    # The garbage collector works in the background: wait (it returns at once on the emulator).
    wait_for(
        lambda: _names(backend),
        lambda n: n == ([], [], []),
        what="the cycle, its Job and Pod to go",
    )


def test_orphan_delete_keeps_dependents(backend: Backend) -> None:
    _tree(backend)
    co, batch, ns = backend.co, backend.batch, backend.namespace
    co.delete_namespaced_custom_object(G, V, ns, P, "c1", propagation_policy="Orphan")
    job = wait_for(
        lambda: batch.read_namespaced_job("j1", ns),
        lambda j: not j.metadata.owner_references,
        what="the Job to lose its ownerReference",
    )
    assert job.metadata.name == "j1"
    # batch/v1 Jobs default to Orphan: deleting one without a policy leaves its Pod.
    batch.delete_namespaced_job("j1", ns)
    wait_for(
        lambda: _names(backend), lambda n: n == ([], [], ["j1-abcde"]), what="only the Pod left"
    )
    pod = wait_for(
        lambda: backend.core.read_namespaced_pod("j1-abcde", ns),
        lambda p: not p.metadata.owner_references,
        what="the Pod to lose its ownerReference",
    )
    assert pod.metadata.name == "j1-abcde"


def test_finalizers_delay_deletion(backend: Backend) -> None:
    co, ns = backend.co, backend.namespace
    co.create_namespaced_custom_object(
        G, V, ns, P, dict(cycle("c1"), metadata={"name": "c1", "finalizers": ["a/b"]})
    )
    deleting = co.delete_namespaced_custom_object(G, V, ns, P, "c1")
    assert deleting["metadata"]["deletionTimestamp"]
    stored = co.get_namespaced_custom_object(G, V, ns, P, "c1")
    assert stored["metadata"]["deletionTimestamp"] and stored["metadata"]["finalizers"] == ["a/b"]
    co.patch_namespaced_custom_object(G, V, ns, P, "c1", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as err:
        co.get_namespaced_custom_object(G, V, ns, P, "c1")
    assert err.value.status == 404


def test_job_defaults(backend: Backend) -> None:
    job = backend.batch.create_namespaced_job(
        backend.namespace,
        {"metadata": {"name": "j"}, "spec": {"template": {"spec": POD_SPEC}}},
    )
    assert (job.spec.backoff_limit, job.spec.completions, job.spec.parallelism) == (6, 1, 1)
    labels = job.spec.template.metadata.labels
    assert labels["job-name"] == "j" and labels["controller-uid"] == job.metadata.uid
    # The selector's label: `controller-uid` before Kubernetes 1.27, then
    # `batch.kubernetes.io/controller-uid` (the emulator's); both label the template.
    ((key, value),) = job.spec.selector.match_labels.items()
    assert (
        key in ("controller-uid", "batch.kubernetes.io/controller-uid")
        and value == job.metadata.uid
    )
    assert job.spec.manual_selector is None


def test_events_can_be_posted_about_a_cycle(backend: Backend) -> None:
    co, core, ns = backend.co, backend.core, backend.namespace
    c = co.create_namespaced_custom_object(G, V, ns, P, cycle("c1"))
    event = core.create_namespaced_event(
        ns,
        {
            "metadata": {"generateName": "c1."},
            "involvedObject": {
                "apiVersion": f"{G}/{V}",
                "kind": "ImprovementCycle",
                "name": "c1",
                "namespace": ns,
                "uid": c["metadata"]["uid"],
            },
            "reason": "StepStarted",
            "message": "m",
            "type": "Normal",
            "source": {"component": "kaizen-operator"},
        },
    )
    listed = core.list_namespaced_event(ns, field_selector="involvedObject.name=c1").items
    assert [e.metadata.name for e in listed] == [event.metadata.name]
