"""The one module that calls the Kubernetes API: async wrappers over the official client.

Every call runs the synchronous client in one of `API_CONCURRENCY` worker threads and returns
plain dicts with the server's own camelCase keys, without `metadata.managedFields` and, for
Jobs, without their pod template (`kaizen.operator.slim`: the operator reads neither, and
holds many objects at once). Jobs go through the generic custom-objects endpoints
(`/apis/batch/v1/...`) so manifests travel untouched by the typed models.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any, cast

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kaizen.api.chain import CHAIN_PLURAL
from kaizen.api.resource import GROUP, PLURAL, VERSION
from kaizen.operator import metrics
from kaizen.operator.slim import slim, slim_all

logger = logging.getLogger(__name__)

#: (group, version, plural) of the kinds of step workload, by apiVersion and kind.
JOB = ("batch", "v1", "jobs")
TRAINJOB = ("trainer.kubeflow.org", "v1alpha1", "trainjobs")
_WORKLOADS = {("batch/v1", "Job"): JOB, ("trainer.kubeflow.org/v1alpha1", "TrainJob"): TRAINJOB}

_SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
_MERGE_PATCH = "application/merge-patch+json"
#: Seconds before a single API call gives up (connect, read).
REQUEST_TIMEOUT = (10, 60)
#: API calls in flight at once (worker threads and pooled connections). asyncio's default
#: pool has cpu_count + 4 threads: 6 on two cores, which capped the operator at about 24
#: requests a second when each took ~250 ms (100 concurrent cycles: event -> status p50 31 s).
API_CONCURRENCY = 32
_EXECUTOR = concurrent.futures.ThreadPoolExecutor(
    max_workers=API_CONCURRENCY, thread_name_prefix="kaizen-api"
)

__all__ = ["ApiException", "CycleOwnedByAnother", "JobOwnedByAnother", "Kube", "load_api_client"]


class JobOwnedByAnother(RuntimeError):
    """A Job with the step's name exists but belongs to something else (e.g. a deleted cycle)."""


class CycleOwnedByAnother(RuntimeError):
    """A cycle with the name a chain's next cycle needs exists and is not the chain's."""


def load_api_client() -> client.ApiClient:
    """An API client configured in-cluster, or from `$KUBECONFIG` read now (not at import time)."""
    configuration = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST") and os.path.exists(_SERVICE_ACCOUNT_TOKEN):
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        path = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, client_configuration=configuration, persist_config=False
        )
    # One pooled connection per worker thread (the client's default is cpu_count * 5).
    configuration.connection_pool_maxsize = API_CONCURRENCY
    return client.ApiClient(configuration)


def _raw(response: Any) -> Any:
    return json.loads(response.data or b"null")


async def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one blocking client call in a worker thread, with the request timeout; failures
    are counted in `kaizen_api_errors_total` (by call and HTTP status)."""
    call = functools.partial(fn, *args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
    try:
        return await asyncio.get_running_loop().run_in_executor(_EXECUTOR, call)
    except ApiException as error:
        metrics.record_api_error(getattr(fn, "__name__", "call"), error.status)
        raise
    except (OSError, urllib3.exceptions.HTTPError):
        metrics.record_api_error(getattr(fn, "__name__", "call"), None)
        raise


def get_discovery(
    api_client: client.ApiClient, path: str, _request_timeout: Any = None
) -> dict[str, Any]:
    """A discovery document (`/apis`, `/apis/<group>/<version>`), read from the path kopf reads
    (the generated `ApisApi` asks for `/apis/`); an error answer raises `ApiException`."""
    request = api_client.param_serialize(
        method="GET",
        resource_path=path,
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    response = api_client.call_api(*request, _request_timeout=_request_timeout)
    response.read()  # type: ignore[no-untyped-call]
    if not 200 <= response.status <= 299:
        raise ApiException.from_response(
            http_resp=response, body=(response.data or b"").decode(errors="replace"), data=None
        )
    return cast(dict[str, Any], json.loads(response.data or b"{}"))


def _dict(value: Any) -> dict[str, Any]:
    """An object as the API returned it, slimmed (`kaizen.operator.slim`)."""
    return cast(dict[str, Any], slim(value or {}))


def _items(value: Any, *, jobs: bool = False) -> list[dict[str, Any]]:
    """The items of a list the API returned, each slimmed (`jobs`: a list of batch/v1 Jobs,
    whose items carry no kind)."""
    return slim_all(_dict(value).get("items") or [], job=jobs)


class Kube:
    """The operator's API calls; one instance per operator run."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)

    @classmethod
    def from_environment(cls) -> Kube:
        return cls(load_api_client())

    def close(self) -> None:
        self.api_client.close()  # type: ignore[no-untyped-call]

    # --- Discovery -----------------------------------------------------------------------

    async def api_group_versions(self, group: str) -> list[str]:
        """The versions of `group` that discovery (`/apis`) lists: none when it lists no such
        group."""
        groups = (await _call(get_discovery, self.api_client, "/apis")).get("groups") or []
        return [
            listed["version"]
            for found in groups
            if found.get("name") == group
            for listed in found.get("versions") or []
        ]

    async def api_resources(self, group: str, version: str) -> list[str] | None:
        """The names of the resources that discovery (`/apis/<group>/<version>`) lists, or None
        when it answers 404 (the server serves nothing of that group version)."""
        try:
            document = await _call(get_discovery, self.api_client, f"/apis/{group}/{version}")
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return [resource["name"] for resource in document.get("resources") or []]

    # --- ImprovementCycles ---------------------------------------------------------------

    async def _get_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A kaizen.dev object as stored, or None when it does not exist."""
        try:
            found = await _call(
                self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return _dict(found)

    async def _patch_custom_status(
        self, plural: str, namespace: str, name: str, status_patch: dict[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch a kaizen.dev object's `/status`; lists in the patch replace stored ones."""
        patched = await _call(
            self.custom.patch_namespaced_custom_object_status,
            GROUP, VERSION, namespace, plural, name, {"status": status_patch},
            _content_type=_MERGE_PATCH,
        )  # fmt: skip
        return _dict(patched)

    async def get_cycle(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The cycle as stored, or None when it does not exist."""
        return await self._get_custom(PLURAL, namespace, name)

    async def patch_cycle_status(
        self, namespace: str, name: str, status_patch: dict[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch the `/status` subresource; lists in the patch replace the stored lists."""
        return await self._patch_custom_status(PLURAL, namespace, name, status_patch)

    async def list_cycles(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        """ImprovementCycles in `namespace` matching an (equality-based) label selector."""
        result = await _call(
            self.custom.list_namespaced_custom_object,
            GROUP, VERSION, namespace, PLURAL,
            label_selector=label_selector,
        )  # fmt: skip
        return _items(result)

    async def create_cycle(self, manifest: dict[str, Any], owner_uid: str) -> dict[str, Any]:
        """Create a cycle; if one with its name exists, accept it only when `owner_uid` owns it."""
        namespace = manifest["metadata"]["namespace"]
        name = manifest["metadata"]["name"]
        try:
            created = await _call(
                self.custom.create_namespaced_custom_object,
                GROUP, VERSION, namespace, PLURAL, manifest,
            )  # fmt: skip
            return _dict(created)
        except ApiException as error:
            if error.status != 409:
                raise
        existing = await self.get_cycle(namespace, name) or {}
        owners = (existing.get("metadata") or {}).get("ownerReferences") or []
        if any(owner.get("uid") == owner_uid for owner in owners):
            return existing
        raise CycleOwnedByAnother(
            f"ImprovementCycle {namespace}/{name} exists but does not belong to this chain"
        )

    async def delete_cycles(self, namespace: str, names: Iterable[str]) -> list[str]:
        """Delete cycles (their Jobs go with them); returns those actually deleted."""
        deleted = []
        for name in names:
            try:
                await _call(
                    self.custom.delete_namespaced_custom_object,
                    GROUP, VERSION, namespace, PLURAL, name,
                    propagation_policy="Background",
                )  # fmt: skip
            except ApiException as error:
                if error.status != 404:
                    raise
            else:
                deleted.append(name)
        return deleted

    # --- ImprovementChains ---------------------------------------------------------------

    async def get_chain(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The chain as stored, or None when it does not exist."""
        return await self._get_custom(CHAIN_PLURAL, namespace, name)

    async def patch_chain_status(
        self, namespace: str, name: str, status_patch: dict[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch the chain's `/status` subresource."""
        return await self._patch_custom_status(CHAIN_PLURAL, namespace, name, status_patch)

    # --- ConfigMaps (the chain's lineage artifact) ---------------------------------------

    async def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A ConfigMap as stored, or None when it does not exist."""
        try:
            response = await _call(
                self.core.read_namespaced_config_map, name, namespace, _preload_content=False
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return _dict(_raw(response))

    async def put_config_map(self, manifest: dict[str, Any]) -> None:
        """Create the ConfigMap, or replace its data when it exists."""
        namespace = manifest["metadata"]["namespace"]
        name = manifest["metadata"]["name"]
        try:
            await _call(
                self.core.create_namespaced_config_map, namespace, manifest, _preload_content=False
            )
            return
        except ApiException as error:
            if error.status != 409:
                raise
        await _call(
            self.core.patch_namespaced_config_map,
            name, namespace, {"data": manifest["data"]},
            _preload_content=False,
        )  # fmt: skip

    # --- Jobs ----------------------------------------------------------------------------

    async def list_jobs(
        self, namespace: str, label_selector: str, resource: tuple[str, str, str] = JOB
    ) -> list[dict[str, Any]]:
        """Jobs (or another kind of step workload) in `namespace` matching an (equality-based)
        label selector."""
        group, version, plural = resource
        result = await _call(
            self.custom.list_namespaced_custom_object,
            group, version, namespace, plural,
            label_selector=label_selector,
        )  # fmt: skip
        return _items(result, jobs=resource == JOB)

    async def list_trainjobs(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        """Kubeflow Trainer TrainJobs in `namespace` matching a label selector."""
        return await self.list_jobs(namespace, label_selector, TRAINJOB)

    async def list_job_pods(self, namespace: str, job_name: str) -> list[dict[str, Any]]:
        """Pods the Job controller created for one Job (label `job-name`)."""
        return await self.list_pods(namespace, f"job-name={job_name}")

    async def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        """Pods in `namespace` matching a label selector (e.g. those of a TrainJob's JobSet)."""
        response = await _call(
            self.core.list_namespaced_pod,
            namespace,
            label_selector=label_selector,
            _preload_content=False,
        )
        return _items(_raw(response))

    async def create_job(self, manifest: dict[str, Any], owner_uid: str) -> dict[str, Any]:
        """Create a Job (or TrainJob, by the manifest's kind); if one with its name exists,
        accept it only when `owner_uid` owns it."""
        namespace = manifest["metadata"]["namespace"]
        name = manifest["metadata"]["name"]
        kind = manifest.get("kind", "Job")
        group, version, plural = _WORKLOADS[(manifest.get("apiVersion", "batch/v1"), kind)]
        try:
            created = await _call(
                self.custom.create_namespaced_custom_object,
                group, version, namespace, plural, manifest,
            )  # fmt: skip
            return _dict(created)
        except ApiException as error:
            if error.status != 409:
                raise
        existing = _dict(
            await _call(
                self.custom.get_namespaced_custom_object, group, version, namespace, plural, name
            )
        )
        owners = (existing.get("metadata") or {}).get("ownerReferences") or []
        if any(owner.get("uid") == owner_uid for owner in owners):
            logger.info(
                "%s %s/%s already exists and belongs to this cycle; accepted", kind, namespace, name
            )
            return existing
        raise JobOwnedByAnother(
            f"{kind} {namespace}/{name} exists but is not owned by cycle uid {owner_uid} "
            f"(owners: {[owner.get('uid') for owner in owners]})"
        )

    async def delete_jobs(
        self, namespace: str, names: Iterable[str], resource: tuple[str, str, str] = JOB
    ) -> list[str]:
        """Delete Jobs or TrainJobs (and, in the background, what they own); returns those
        actually deleted."""
        group, version, plural = resource
        deleted = []
        for name in names:
            try:
                await _call(
                    self.custom.delete_namespaced_custom_object,
                    group, version, namespace, plural, name,
                    propagation_policy="Background",
                )  # fmt: skip
            except ApiException as error:
                if error.status != 404:
                    raise
            else:
                deleted.append(name)
        return deleted

    async def delete_trainjobs(self, namespace: str, names: Iterable[str]) -> list[str]:
        """Delete TrainJobs (their JobSet, Jobs and pods go in the background)."""
        return await self.delete_jobs(namespace, names, TRAINJOB)
