"""The Dask side of :mod:`.batch`: one task per image, results written by the workers.

Each worker process keeps the model it loaded (:func:`.batch.cached_model`),
so a cluster of N workers loads the model N times, not once per image.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

from .batch import BatchSummary, FileReport, SegmentOptions, segment_file


def dask_client(scheduler: Any, workers: int | None):
    """A distributed Client from ``"local"``, an address, or a Client/LocalCluster."""
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        return scheduler, False
    if isinstance(scheduler, LocalCluster):
        return Client(scheduler), True
    if scheduler == "local":
        n = workers or max(1, (os.cpu_count() or 2) // 2)
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster), True
    try:
        return Client(scheduler, timeout="20s"), True
    except OSError as err:  # unreachable address, refused connection, timeout
        raise ConnectionError(f"cannot reach the Dask scheduler at {scheduler} ({err})") from None


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

    client, owned = dask_client(scheduler, workers)
    try:
        if scheduler == "local" and options.torch_threads is None:
            # The local workers share this machine's cores: split them.
            n_workers = max(1, len(client.scheduler_info().get("workers", {})))
            options = SegmentOptions.from_dict({**options.to_dict(), "torch_threads": max(1, (os.cpu_count() or 1) // n_workers)})  # fmt: skip
        payload = options.to_dict()
        futures = {
            client.submit(segment_file, str(p), str(Path(model_dir).resolve()), str(out_dir.resolve()), payload, pure=False): p
            for p in todo
        }  # fmt: skip
        for future in as_completed(futures):
            path = futures[future]
            try:
                report = future.result()
            except Exception as err:  # a worker died or could not run the task
                report = FileReport(str(path), path.stem, "failed", f"{path}: worker error {type(err).__name__}: {err}")  # fmt: skip
            summary.reports.append(report)
            yield report
    finally:
        if owned:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None:
                cluster.close()
