"""The job simulator: a kubelet + Job controller stand-in that talks HTTP to the emulator.

Usage::

    from tests.kube.cluster import running_cluster
    from tests.kube.jobsim import JobSimulator

    with running_cluster() as cluster, JobSimulator(cluster, "ns1") as sim:
        ...create Jobs over HTTP; sim.runs lists what ran (job, pod, argv, exit code)...

It watches batch/v1 Jobs (and their Pods) in one namespace with the official client. For each
new Job that is not suspended (``spec.suspend: true`` keeps it pending with a ``Suspended``
condition, as Kueue relies on), and within ``max_parallel`` running Jobs, it:

1. sets the Job's ``startTime``/``active``, creates a Pod ``<job>-<5 chars>`` (labels
   ``job-name``, ``batch.kubernetes.io/job-name``, ``controller-uid``, ...; a controller
   ownerReference to the Job) and marks it Running;
2. runs the first container's ``command`` + ``args`` as a local subprocess (``$(VAR)``
   expanded; a leading ``python`` becomes ``sys.executable``) in ``workdir`` (the repo root),
   with ``os.environ`` + the container's ``env`` (plain values, ``secretKeyRef``,
   ``configMapKeyRef``, ``fieldRef``) and ``envFrom``; a missing Secret/ConfigMap keeps the Pod
   waiting with ``CreateContainerConfigError``, as a kubelet does;
3. points the container's ``terminationMessagePath`` at a temp file: via the env var
   ``KAIZEN_SUMMARY_PATH``, and by substituting the path wherever it appears in argv or env;
4. stores stdout+stderr as the Pod's log (``GET .../pods/<pod>/log``), then writes the Pod's
   ``containerStatuses[0].state.terminated`` (exitCode, reason Completed/Error, message = the
   termination file, at most 4096 bytes; with ``FallbackToLogsOnError`` and a failed container
   with an empty file, the log's last 80 lines / 2048 bytes) and phase Succeeded/Failed;
5. then writes the Job's status: ``succeeded: 1`` with ``SuccessCriteriaMet`` then ``Complete``;
   or on failure applies ``podFailurePolicy`` (``FailJob`` / ``Ignore`` / ``Count`` rules with
   ``onExitCodes``) and ``backoffLimit`` (a new Pod per retry, ``failed: N``), ending with
   ``FailureTarget`` then ``Failed`` (reason ``PodFailurePolicy`` / ``BackoffLimitExceeded``).
   ``activeDeadlineSeconds`` kills the process and fails the Job with ``DeadlineExceeded``.

As on a real node, a process is killed when its Pod is deleted (a Job deleted with
``Background``/``Foreground`` propagation takes its Pods along). Against a real API server
(tests/apiserver/), where deleting a Pod bound to a node only marks it (``deletionTimestamp``),
the simulator stops the process and then deletes the Pod for good (grace period 0), as a
kubelet does; the Pod log store is the emulator's (a real server answers 405: logs stay in
:attr:`Run.log`); API calls are retried while the server cannot be reached (a restart). A Job deleted with the batch/v1
default (``Orphan``) leaves its Pod running to the end, as in a real cluster; pass
``kill_orphans=True`` to kill it anyway. Suspending a running Job kills it and deletes its Pod.

With ``step_runner`` (e.g. :func:`tests.kube.fast_steps.run_fast_step`) a container runs in
this process instead: fault-injection tests and the scale benchmark measure the operator, not
the step programs. Either way a container's command starts after ``step_seconds`` (a deleted
pod ends the wait first, exit code 143).

Errors inside the simulator are collected and re-raised by :meth:`JobSimulator.stop`.

With ``trainjobs=True`` it also plays Kubeflow Trainer for ``trainer.kubeflow.org/v1alpha1``
TrainJobs: one Pod per node, run concurrently with the torch runtime's ``PET_*`` variables and
a local rendezvous, and the TrainJob's ``Complete``/``Failed`` conditions (:mod:`.trainjobs`).

The package is split by concept: :mod:`.common` (constants, run records), :mod:`.base` (state,
API helpers), :mod:`.kubelet` (Pods and processes), :mod:`.controller` (Job status, retries),
:mod:`.trainjobs` (TrainJobs) and :mod:`.simulator` (:class:`JobSimulator`: lifecycle,
watches), each class a subclass of the one before.
"""

from tests.kube.jobsim.common import SUMMARY_ENV, Run
from tests.kube.jobsim.simulator import JobSimulator

__all__ = ["JobSimulator", "Run", "SUMMARY_ENV"]
