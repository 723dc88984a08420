"""The realism layer, exercised over real HTTP with the official client."""

from __future__ import annotations

import json
import threading

import kubernetes
import pytest
from kubernetes.client.rest import ApiException

from tests.kube.cluster import CYCLES, JOBS, PODS, Cluster, wait_for

G, V, P = "kaizen.dev", "v1alpha1", "improvementcycles"


def cycle(name: str, **spec: object) -> dict:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "ImprovementCycle",
        "metadata": {"name": name, "labels": {"team": "a"}},
        "spec": dict(spec) or {"model": "m"},
    }


@pytest.fixture
def co(cluster: Cluster) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(cluster.api_client())


@pytest.fixture
def core(cluster: Cluster) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(cluster.api_client())


@pytest.fixture
def batch(cluster: Cluster) -> kubernetes.client.BatchV1Api:
    return kubernetes.client.BatchV1Api(cluster.api_client())


def test_create_answers_201_and_stamps_metadata(co, namespace, cluster):
    body, status, _ = co.create_namespaced_custom_object_with_http_info(
        G, V, namespace, P, cycle("c1")
    )
    assert status == 201
    meta = body["metadata"]
    assert meta["namespace"] == namespace
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1 and int(meta["resourceVersion"]) > 0
    assert co.get_namespaced_custom_object(G, V, namespace, P, "c1") == body
    assert cluster.get(CYCLES, namespace, "c1") == body
    with pytest.raises(ApiException) as err:
        co.create_namespaced_custom_object(G, V, namespace, P, cycle("c1"))
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "AlreadyExists"


def test_generate_name(core, namespace):
    a = core.create_namespaced_event(
        namespace,
        {
            "metadata": {"generateName": "ev-"},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "reason": "X",
        },
    )
    b = core.create_namespaced_event(
        namespace,
        {
            "metadata": {"generateName": "ev-"},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "reason": "Y",
        },
    )
    assert a.metadata.name.startswith("ev-") and len(a.metadata.name) == 8
    assert a.metadata.name != b.metadata.name


def test_create_drops_status_for_status_subresource(co, namespace):
    body = dict(cycle("c1"), status={"phase": "Hacked"})
    assert "status" not in co.create_namespaced_custom_object(G, V, namespace, P, body)


def test_list_has_kind_and_numeric_resource_version(co, core, namespace, cluster):
    co.create_namespaced_custom_object(G, V, namespace, P, cycle("c1"))
    result = co.list_namespaced_custom_object(G, V, namespace, P)
    assert result["kind"] == "ImprovementCycleList" and result["apiVersion"] == f"{G}/{V}"
    assert int(result["metadata"]["resourceVersion"]) >= 1
    assert [i["metadata"]["name"] for i in result["items"]] == ["c1"]
    assert co.list_namespaced_custom_object(G, V, "elsewhere", P)["items"] == []
    pods = core.list_namespaced_pod(namespace)
    assert pods.items == [] and pods.metadata.resource_version.isdigit()


def test_lists_come_in_chunks_with_limit_and_continue(core, namespace):
    # As a real API server answers kubectl (chunks of 500) and kopf with watching.chunk_size.
    for n in range(7):
        labels = {"pick": "yes"} if n != 3 else {}
        core.create_namespaced_config_map(
            namespace, {"metadata": {"name": f"m{n}", "labels": labels}}
        )
    first = core.list_namespaced_config_map(namespace, label_selector="pick=yes", limit=4)
    assert [i.metadata.name for i in first.items] == ["m0", "m1", "m2", "m4"]
    assert first.metadata.remaining_item_count == 2 and first.metadata._continue
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "m9", "labels": {"pick": "yes"}}}
    )
    rest = core.list_namespaced_config_map(
        namespace, label_selector="pick=yes", limit=4, _continue=first.metadata._continue
    )
    assert [i.metadata.name for i in rest.items] == ["m5", "m6", "m9"]
    assert not rest.metadata._continue and rest.metadata.remaining_item_count is None
    # Every chunk reports the first one's resourceVersion: a watch from it misses nothing.
    assert rest.metadata.resource_version == first.metadata.resource_version
    whole = core.list_namespaced_config_map(namespace, limit=0)
    assert len(whole.items) == 8 and not whole.metadata._continue
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map(namespace, limit=2, _continue="not-a-token")
    assert err.value.status == 400 and "continue" in json.loads(err.value.body)["message"]


def test_label_and_field_selectors(core, namespace):
    for name, labels in [("a", {"job-name": "j1", "x": "1"}), ("b", {"job-name": "j2"}), ("c", {})]:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name, "labels": labels}})

    def names(**kw):
        return [i.metadata.name for i in core.list_namespaced_config_map(namespace, **kw).items]

    assert names(label_selector="job-name=j1") == ["a"]
    assert names(label_selector="job-name==j2") == ["b"]
    assert names(label_selector="job-name") == ["a", "b"]
    assert names(label_selector="!job-name") == ["c"]
    assert names(label_selector="job-name!=j1") == ["b", "c"]
    assert names(label_selector="job-name in (j1,j2),x") == ["a"]
    assert names(label_selector="job-name notin (j1)") == ["b", "c"]
    assert names(field_selector="metadata.name=b") == ["b"]


def test_merge_patch_generation_and_status_split(co, namespace):
    co.create_namespaced_custom_object(G, V, namespace, P, cycle("c1", model="m", steps=[1, 2]))
    patched = co.patch_namespaced_custom_object(
        G, V, namespace, P, "c1", {"metadata": {"labels": {"x": "y"}}}
    )
    assert patched["metadata"]["generation"] == 1  # metadata only
    patched = co.patch_namespaced_custom_object(
        G, V, namespace, P, "c1", {"spec": {"steps": [3]}, "status": {"phase": "Nope"}}
    )
    assert patched["metadata"]["generation"] == 2
    assert patched["spec"] == {"model": "m", "steps": [3]}  # lists are replaced
    assert "status" not in patched  # the main object ignores status

    rv = patched["metadata"]["resourceVersion"]
    patched = co.patch_namespaced_custom_object_status(
        G, V, namespace, P, "c1", {"status": {"phase": "Running"}, "spec": {"model": "other"}}
    )
    assert patched["status"] == {"phase": "Running"}
    assert patched["spec"]["model"] == "m"  # /status ignores spec
    assert patched["metadata"]["generation"] == 2  # status never bumps generation
    assert int(patched["metadata"]["resourceVersion"]) > int(rv)

    # A no-op write changes nothing, not even the resourceVersion.
    same = co.patch_namespaced_custom_object_status(
        G, V, namespace, P, "c1", {"status": {"phase": "Running"}}
    )
    assert same["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]


def test_json_patch_and_failed_test_op(cluster, co, namespace):
    obj = co.create_namespaced_custom_object(G, V, namespace, P, cycle("c1"))
    rv = obj["metadata"]["resourceVersion"]
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/metadata/finalizers", "value": ["kaizen.dev/x"]},
    ]
    jp = {"_content_type": "application/json-patch+json"}
    patched = co.patch_namespaced_custom_object(G, V, namespace, P, "c1", ops, **jp)
    assert patched["metadata"]["finalizers"] == ["kaizen.dev/x"]
    with pytest.raises(ApiException) as err:
        co.patch_namespaced_custom_object(G, V, namespace, P, "c1", ops, **jp)  # stale rv
    assert err.value.status == 422
    assert (
        cluster.get(CYCLES, namespace, "c1")["metadata"]["resourceVersion"]
        == patched["metadata"]["resourceVersion"]
    )


def test_stale_resource_version_is_409_and_put_replaces(co, namespace):
    obj = co.create_namespaced_custom_object(G, V, namespace, P, cycle("c1"))
    fresh = co.patch_namespaced_custom_object(G, V, namespace, P, "c1", {"spec": {"model": "n"}})
    stale = dict(obj, spec={"model": "stale"})
    with pytest.raises(ApiException) as err:
        co.replace_namespaced_custom_object(G, V, namespace, P, "c1", stale)
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "Conflict"
    with pytest.raises(ApiException) as err:
        co.patch_namespaced_custom_object(
            G,
            V,
            namespace,
            P,
            "c1",
            {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}, "spec": {"x": 1}},
        )
    assert err.value.status == 409
    replaced = co.replace_namespaced_custom_object(
        G, V, namespace, P, "c1", dict(fresh, spec={"other": True})
    )
    assert replaced["spec"] == {"other": True} and replaced["metadata"]["generation"] == 3
    assert replaced["metadata"]["uid"] == obj["metadata"]["uid"]


def test_strategic_merge_patch_is_refused_for_custom_resources(cluster, namespace):
    client = cluster.api_client()
    co = kubernetes.client.CustomObjectsApi(client)
    co.create_namespaced_custom_object(G, V, namespace, P, cycle("c1"))
    with pytest.raises(ApiException) as err:
        co.patch_namespaced_custom_object(
            G,
            V,
            namespace,
            P,
            "c1",
            {"spec": {"a": 1}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert err.value.status == 415


#: A watch's timeoutSeconds in the emulator's clock, which ``advance_clock`` moves on at once.
WATCH_TIMEOUT = 1000


class Watcher(threading.Thread):
    """``Watch().stream(...)`` of the cycles in a namespace, in the background, until it ends."""

    def __init__(self, co: kubernetes.client.CustomObjectsApi, namespace: str, **kwargs):
        super().__init__(daemon=True)
        self.co, self.namespace, self.kwargs = co, namespace, kwargs
        self.events: list[tuple[str, str]] = []
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            for e in kubernetes.watch.Watch().stream(
                self.co.list_namespaced_custom_object, G, V, self.namespace, P, **self.kwargs
            ):
                self.events.append((e["type"], e["object"]["metadata"]["name"]))
        except BaseException as e:  # noqa: BLE001 - shown by the test
            self.error = e

    def received(self, count: int, what: str) -> list[tuple[str, str]]:
        """The events once ``count`` have arrived; fails at once if the watch ends before."""
        events, error, alive = wait_for(
            lambda: (list(self.events), self.error, self.is_alive()),
            lambda seen: len(seen[0]) >= count or not seen[2],
            what=f"{what} (then: the watch's error, whether it is still open)",
        )
        assert error is None, error
        assert len(events) >= count, f"the watch ended before {what}: {events}"
        return events

    def ended(self) -> list[tuple[str, str]]:
        wait_for(self.is_alive, lambda alive: not alive, what="the watch to end")
        assert self.error is None, self.error
        return self.events


def test_watch_from_resource_version_with_timeout(cluster, co, namespace):
    a = co.create_namespaced_custom_object(G, V, namespace, P, cycle("a"))
    co.create_namespaced_custom_object(G, V, namespace, P, cycle("b"))
    co.patch_namespaced_custom_object_status(G, V, namespace, P, "b", {"status": {"phase": "X"}})
    watcher = Watcher(
        co,
        namespace,
        resource_version=a["metadata"]["resourceVersion"],
        timeout_seconds=WATCH_TIMEOUT,
    )
    received = watcher.received(2, "the replayed events")
    assert received == [("ADDED", "b"), ("MODIFIED", "b")]  # nothing older than the given rv

    # Halfway to its timeout the watch is still open: a live change arrives on it.
    cluster.advance_clock(WATCH_TIMEOUT / 2)
    co.patch_namespaced_custom_object_status(G, V, namespace, P, "a", {"status": {"phase": "Y"}})
    watcher.received(3, "the live change")
    assert watcher.is_alive()
    # At its timeout the API server ends the stream, and the client's Watch returns.
    cluster.advance_clock(WATCH_TIMEOUT / 2)
    assert watcher.ended() == [("ADDED", "b"), ("MODIFIED", "b"), ("MODIFIED", "a")]

    watcher = Watcher(co, namespace, label_selector="team=a", timeout_seconds=WATCH_TIMEOUT)
    watcher.received(2, "the current objects")
    cluster.advance_clock(WATCH_TIMEOUT)
    assert watcher.ended() == [("ADDED", "a"), ("ADDED", "b")]  # no rv: the current state first


def test_watch_sees_live_changes_and_too_old_rv(cluster, co, namespace):
    seen: list[tuple[str, str]] = []
    errors: list[BaseException] = []

    rv = co.list_namespaced_custom_object(G, V, namespace, P)["metadata"]["resourceVersion"]

    def consume():
        # Like any watcher (kopf included), reconnect from the last resourceVersion seen when the
        # connection itself fails; every failure is kept for the assertion message.
        last = rv
        for _ in range(3):
            try:
                stream = kubernetes.watch.Watch().stream(
                    co.list_namespaced_custom_object,
                    G,
                    V,
                    namespace,
                    P,
                    resource_version=last,
                    timeout_seconds=5,
                )
                for e in stream:
                    seen.append((e["type"], e["object"]["metadata"]["name"]))
                    last = e["object"]["metadata"]["resourceVersion"]
                if len(seen) >= 2:
                    return
                # The server ended the watch (timeout_seconds) before both events: on a busy
                # machine that happens; a watcher watches again from where it was.
            except kubernetes.client.ApiException as e:
                errors.append(e)
                return
            except Exception as e:  # noqa: BLE001 - a dropped connection: watch again
                errors.append(e)

    thread = threading.Thread(target=consume)
    thread.start()
    co.create_namespaced_custom_object(G, V, namespace, P, cycle("live"))
    co.delete_namespaced_custom_object(G, V, namespace, P, "live")
    wait_for(
        lambda: (list(seen), list(errors)),
        lambda s: s[0] == [("ADDED", "live"), ("DELETED", "live")],
        what="ADDED then DELETED (second item: the watcher's errors)",
    )
    cluster.drop_watches()
    thread.join(timeout=30)
    assert not thread.is_alive()

    cluster.call(lambda: setattr(cluster.emulator, "_events_floor", 10**6))
    resp = co.list_namespaced_custom_object(
        G, V, namespace, P, watch=True, resource_version="1", _preload_content=False
    )
    event = json.loads(resp.data.decode().splitlines()[0])
    assert event["type"] == "ERROR" and event["object"]["code"] == 410


def _owned(owner: dict, kind: str, api_version: str) -> list[dict]:
    meta = owner["metadata"]
    return [
        {
            "apiVersion": api_version,
            "kind": kind,
            "name": meta["name"],
            "uid": meta["uid"],
            "controller": True,
        }
    ]


def _tree(co, batch, core, namespace) -> None:
    c = co.create_namespaced_custom_object(G, V, namespace, P, cycle("c1"))
    job = batch.create_namespaced_job(
        namespace,
        {
            "metadata": {
                "name": "j1",
                "labels": {"kaizen.dev/cycle": "c1"},
                "ownerReferences": _owned(c, "ImprovementCycle", f"{G}/{V}"),
            },
            "spec": {
                "template": {
                    "spec": {
                        "containers": [{"name": "main", "image": "x"}],
                        "restartPolicy": "Never",
                    }
                }
            },
        },
    )
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {
                "name": "j1-abcde",
                "ownerReferences": _owned(
                    job.to_dict() | {"metadata": {"name": "j1", "uid": job.metadata.uid}},
                    "Job",
                    "batch/v1",
                ),
            },
            "spec": {"containers": [{"name": "main", "image": "x"}]},
        },
    )


@pytest.mark.parametrize("policy", [None, "Background", "Foreground"])
def test_cascade_delete(cluster, co, batch, core, namespace, policy):
    _tree(co, batch, core, namespace)
    body = kubernetes.client.V1DeleteOptions(propagation_policy=policy) if policy else None
    co.delete_namespaced_custom_object(G, V, namespace, P, "c1", body=body)
    assert cluster.objects(CYCLES, namespace) == []
    assert cluster.objects(JOBS, namespace) == [] and cluster.objects(PODS, namespace) == []


def test_orphan_delete_keeps_dependents(cluster, co, batch, core, namespace):
    _tree(co, batch, core, namespace)
    co.delete_namespaced_custom_object(G, V, namespace, P, "c1", propagation_policy="Orphan")
    [job] = cluster.objects(JOBS, namespace)
    assert "ownerReferences" not in job["metadata"]
    # batch/v1 Jobs default to Orphan, as on a real API server: the pod stays.
    batch.delete_namespaced_job("j1", namespace)
    [pod] = cluster.objects(PODS, namespace)
    assert "ownerReferences" not in pod["metadata"]


def test_an_object_created_after_its_owner_was_deleted_is_collected(
    cluster, co, batch, core, namespace
):
    """A Job controller that read its Job just before the Job was deleted creates the Pod
    afterwards: the garbage collector deletes it, since its only owner is gone."""
    _tree(co, batch, core, namespace)
    [job] = cluster.objects(JOBS, namespace)
    co.delete_namespaced_custom_object(G, V, namespace, P, "c1")
    assert cluster.objects(PODS, namespace) == []
    late = core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "j1-late", "ownerReferences": _owned(job, "Job", "batch/v1")},
            "spec": {"containers": [{"name": "main", "image": "x"}]},
        },
    )
    assert late.metadata.name == "j1-late"  # the create itself succeeds
    assert cluster.objects(PODS, namespace) == []
    # An owner that is alive keeps it.
    alive = co.create_namespaced_custom_object(G, V, namespace, P, cycle("c2"))
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {
                "name": "kept",
                "ownerReferences": _owned(alive, "ImprovementCycle", f"{G}/{V}"),
            },
            "spec": {"containers": [{"name": "main", "image": "x"}]},
        },
    )
    assert [p["metadata"]["name"] for p in cluster.objects(PODS, namespace)] == ["kept"]


def test_finalizers_delay_deletion(cluster, co, namespace):
    co.create_namespaced_custom_object(
        G, V, namespace, P, dict(cycle("c1"), metadata={"name": "c1", "finalizers": ["a/b"]})
    )
    deleting = co.delete_namespaced_custom_object(G, V, namespace, P, "c1")
    assert deleting["metadata"]["deletionTimestamp"]
    assert cluster.get(CYCLES, namespace, "c1")["metadata"]["deletionTimestamp"]
    co.patch_namespaced_custom_object(G, V, namespace, P, "c1", {"metadata": {"finalizers": None}})
    assert cluster.get(CYCLES, namespace, "c1") is None
    assert cluster.history(CYCLES, namespace, "c1")[-1] is None


def test_job_defaults_and_pod_log(cluster, batch, core, namespace):
    job = batch.create_namespaced_job(
        namespace,
        {
            "metadata": {"name": "j"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
        },
    )
    assert job.spec.backoff_limit == 6 and job.spec.suspend is False
    assert job.spec.template.metadata.labels["job-name"] == "j"
    pod = core.create_namespaced_pod(
        namespace,
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
    )
    assert pod.status.phase == "Pending"
    client = cluster.api_client()
    client.rest_client.pool_manager.request(
        "PUT", f"{cluster.url}/api/v1/namespaces/{namespace}/pods/p/log", body=b"one\ntwo\n"
    )
    assert core.read_namespaced_pod_log("p", namespace) == "one\ntwo\n"
    assert core.read_namespaced_pod_log("p", namespace, tail_lines=1) == "two\n"


def test_injected_faults(cluster, co, namespace):
    co.create_namespaced_custom_object(G, V, namespace, P, cycle("c1"))
    fault = cluster.add_fault(
        method="PATCH", resource=CYCLES, subresource="status", status=409, reason="Conflict", nth=2
    )
    co.patch_namespaced_custom_object_status(G, V, namespace, P, "c1", {"status": {"n": 1}})
    with pytest.raises(ApiException) as err:
        co.patch_namespaced_custom_object_status(G, V, namespace, P, "c1", {"status": {"n": 2}})
    assert err.value.status == 409
    assert cluster.get(CYCLES, namespace, "c1")["status"] == {"n": 1}  # the fault changed nothing
    co.patch_namespaced_custom_object_status(G, V, namespace, P, "c1", {"status": {"n": 3}})
    assert cluster.call(lambda: (fault.seen, fault.fired)) == (3, 1)


def test_the_request_log_stays_bounded_and_every_request_is_counted(cluster, co, namespace):
    # kmock routes each request by scanning its log of served requests: unbounded, every
    # request cost more than the one before. The realism layer keeps the newest only.
    limit = 16
    cluster.call(lambda: setattr(cluster.emulator, "request_log_limit", limit))
    before = cluster.requests_served()
    co.create_namespaced_custom_object(G, V, namespace, P, cycle("c1"))
    for n in range(10 * limit):
        co.patch_namespaced_custom_object_status(G, V, namespace, P, "c1", {"status": {"n": n}})
        co.get_namespaced_custom_object(G, V, namespace, P, "c1")

    def log_sizes() -> list[int]:
        emulator = cluster.emulator
        return [len(emulator._requests)] + [
            len(getattr(p, "_requests", ())) for p in emulator._payloads
        ]

    assert max(cluster.call(log_sizes)) <= 2 * limit
    # Routing still works after trimming: the newest write is what a read returns.
    assert co.get_namespaced_custom_object(G, V, namespace, P, "c1")["status"] == {
        "n": 10 * limit - 1
    }
    counts = cluster.request_counts()
    assert counts[f"PATCH {G}/{V}/{P}/status"] == 10 * limit
    assert counts[f"GET {G}/{V}/{P}"] == 10 * limit + 1
    assert counts[f"POST {G}/{V}/{P}"] == 1
    assert cluster.requests_served() - before == 20 * limit + 2
