"""``segment --scheduler local``: the local cluster closes cleanly, its workers left to exit by themselves."""

from __future__ import annotations

import logging


def test_a_local_clusters_workers_are_not_killed_when_it_closes(tmp_path):
    """A worker that imported torch took over 4 s to exit: the Nanny killed it and logged
    'Worker process still alive after 4.0 seconds, killing' at the end of every run."""
    from napari_cellseg.inference.batch_dask import close_dask, dask_client

    warnings: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            warnings.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logging.getLogger("distributed.nanny").addHandler(handler)
    marker = tmp_path / "exited"

    def exit_slowly(path: str) -> bool:  # defined here: pickled by value for the worker process
        import atexit
        import pathlib
        import time

        atexit.register(lambda: (time.sleep(5), pathlib.Path(path).write_text("done")))
        return True

    try:
        client, owned, cluster = dask_client("local", 1)
        assert owned and cluster is not None
        assert client.submit(exit_slowly, str(marker), pure=False).result()
        close_dask(client, cluster)
    finally:
        logging.getLogger("distributed.nanny").removeHandler(handler)
    assert marker.is_file(), "the worker process was killed before it could exit"
    assert not [w for w in warnings if "still alive" in w], warnings


def test_a_local_cluster_passed_in_stays_open_for_the_next_run(tmp_path):
    """The run closes only the client it made: the caller's cluster is the caller's to close."""
    import torch
    from distributed import Client, LocalCluster
    from tiny_models import save_fitted_model, write_sample_images

    from napari_cellseg.inference.batch import SegmentOptions, segment_files

    torch.set_num_threads(1)
    model_dir = save_fitted_model(tmp_path / "model")
    paths = write_sample_images(tmp_path / "in", keys=("c_histology_1",))
    options = SegmentOptions(tile_size=128, torch_threads=1)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        assert segment_files(paths, model_dir, tmp_path / "out", options, scheduler=cluster).ok
        assert cluster.status.name == "running"
        with Client(cluster) as client:  # and it still runs work
            assert client.submit(sum, [1, 2]).result() == 3
