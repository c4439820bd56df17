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
