"""The Dask side of :mod:`.batch`: one task per image, results written by the workers.

Each worker process keeps the model it loaded (:func:`.batch.cached_model`),
so a cluster of N workers loads the model N times, not once per image. A local
cluster started here is closed when the run ends, client first, then the cluster,
its workers given time to exit (:data:`WORKER_EXIT_TIMEOUT_S`).
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

from distributed import Nanny

from ..config import is_whole_number
from ..worker_signals import stop_signals_ignored
from .batch import BatchSummary, FileReport, SegmentOptions, segment_file

# A worker process that imported torch takes a few seconds to exit (the interpreter's teardown,
# longer on a busy machine): more than the 4 s a Nanny waits by default before it kills the
# process and logs "Worker process still alive after 4.0 seconds, killing". Its outputs are
# written by then; the wait only lets it end by itself.
WORKER_EXIT_TIMEOUT_S = 30.0


class PatientNanny(Nanny):
    """The Nanny of a local cluster's worker, waiting up to :data:`WORKER_EXIT_TIMEOUT_S` (not 5 s)
    for the worker process to exit when the cluster closes."""

    async def close(self, timeout: float = WORKER_EXIT_TIMEOUT_S, reason: str = "nanny-close"):
        return await super().close(timeout=timeout, reason=reason)


def dask_client(scheduler: Any, workers: int | None):
    """A distributed Client from ``"local"``, an address, or a Client/LocalCluster; and the
    LocalCluster started for ``"local"``, which the caller closes (else None)."""
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        return scheduler, False, None
    if isinstance(scheduler, LocalCluster):  # the caller's cluster: only our client is closed
        return Client(scheduler), True, None
    if workers is not None and (not is_whole_number(workers) or workers < 1):
        raise ValueError(f"workers must be a whole number >= 1, got {workers!r}")
    if scheduler == "local":
        n = workers or max(1, (os.cpu_count() or 2) // 2)
        with stop_signals_ignored():  # the workers leave Ctrl-C and SIGTERM to this process
            cluster = LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, worker_class=PatientNanny,
                # no dashboard; the scheduler's HTTP server (health checks) on a free port, not 8787,
                # which another cluster may hold ("Port 8787 is already in use")
                dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            )  # fmt: skip
        return Client(cluster), True, cluster
    try:
        return Client(scheduler, timeout="20s"), True, None
    except OSError as err:  # unreachable address, refused connection, timeout
        raise ConnectionError(f"cannot reach the Dask scheduler at {scheduler} ({err})") from None
    except (ValueError, TypeError) as err:  # not an address at all ("threads", "lcoal", "localhost")
        raise ConnectionError(
            f"{scheduler!r} is not a Dask scheduler: give 'local' (a cluster on this machine) or the "
            f"scheduler's address, such as tcp://192.168.1.5:8786 ({err})"
        ) from None


def close_dask(client, cluster=None) -> None:
    """Close ``client``, then ``cluster`` (a LocalCluster started by :func:`dask_client`), waiting
    for its workers to exit rather than killing them."""
    client.close()
    if cluster is not None:
        cluster.close(timeout=WORKER_EXIT_TIMEOUT_S + 10)


def run_on_dask(
    todo: list[Path],
    model_dir,
    out_dir: Path,
    options: SegmentOptions,
    scheduler: Any,
    workers: int | None,
    summary: BatchSummary,
) -> Generator[FileReport, None, None]:
    """Submit one :func:`~.batch.segment_file` task per image; yield reports as they finish.

    Workers get paths, not pixels, and write the outputs themselves; a worker
    that dies fails its images with a message, the others go on.
    """
    from distributed import as_completed

    client, owned, cluster = dask_client(scheduler, workers)
    try:
        if scheduler == "local" and options.torch_threads is None:
            # The local workers share this machine's cores: split them.
            n_workers = max(1, len(client.scheduler_info().get("workers", {})))
            options = SegmentOptions.from_dict({**options.to_dict(), "torch_threads": max(1, (os.cpu_count() or 1) // n_workers)})  # fmt: skip
        payload = options.to_dict()
        first = len(summary.reports)  # reports of images checked before Dask stay first
        # absolute paths (a remote worker does not run in this folder), links kept: an image
        # is named after the link given, as in a run without Dask
        futures = {
            client.submit(segment_file, os.path.abspath(p), os.path.abspath(model_dir), os.path.abspath(out_dir), payload, pure=False): p
            for p in todo
        }  # fmt: skip
        for future in as_completed(futures):
            path = futures[future]
            try:
                report = future.result()
                report = _as_given(report, path)
            except Exception as err:  # a worker died or could not run the task
                report = FileReport(str(path), path.stem, "failed", f"{path}: worker error {type(err).__name__}: {err}")  # fmt: skip
            summary.reports.append(report)
            yield report
        # the summary in the order the images were given, as a run without Dask lists them
        order = {str(p): k for k, p in enumerate(todo)}
        summary.reports[first:] = sorted(summary.reports[first:], key=lambda r: order.get(r.path, len(order)))
    finally:
        if owned:
            close_dask(client, cluster)


def _as_given(report: FileReport, path: Path) -> FileReport:
    """``report`` naming the image as the user gave it, not by the absolute path the worker got."""
    import dataclasses

    absolute = os.path.abspath(path)
    if absolute == str(path):
        return report
    return dataclasses.replace(
        report,
        path=str(path),
        message=report.message.replace(absolute, str(path)),
        reason=report.reason.replace(absolute, str(path)),
    )
