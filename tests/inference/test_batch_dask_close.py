"""``segment --scheduler local``: the local cluster closes cleanly, its workers left to exit by themselves."""

from __future__ import annotations

import logging
from pathlib import Path


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


def test_images_go_to_workers_by_absolute_path_and_the_summary_keeps_their_order(tmp_path, monkeypatch):
    """A remote worker runs in another folder: relative paths failed there on every image."""
    from distributed import LocalCluster

    from napari_cellseg.inference import batch_dask
    from napari_cellseg.inference.batch import BatchSummary, FileReport, SegmentOptions

    def fake_segment_file(path, model_dir, out_dir, payload):  # output: the path the worker got
        return FileReport(path, path.rsplit("/", 1)[-1], "failed", f"{path}: cannot read", output=path)

    monkeypatch.setattr(batch_dask, "segment_file", fake_segment_file)
    monkeypatch.chdir(tmp_path)
    todo = [Path("in") / f"img{k}.png" for k in (3, 1, 2)]
    summary = BatchSummary()
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        reports = list(
            batch_dask.run_on_dask(todo, "model", Path("out"), SegmentOptions(), cluster, None, summary)
        )
    assert len(reports) == 3
    assert [r.output for r in summary.reports] == [str((tmp_path / p).resolve()) for p in todo]
    assert [r.path for r in summary.reports] == [str(p) for p in todo]  # as given, in input order
    assert summary.reports[0].message == f"{todo[0]}: cannot read"


def test_a_scheduler_that_is_no_address_and_bad_worker_counts_are_refused_clearly():
    import pytest

    from napari_cellseg.inference.batch_dask import dask_client

    with pytest.raises(ConnectionError, match="'threads' is not a Dask scheduler: give 'local'"):
        dask_client("threads", None)
    for workers in (0, -2, 1.5):
        with pytest.raises(ValueError, match="workers must be a whole number >= 1"):
            dask_client("local", workers)


def test_segment_refuses_workers_below_one_up_front(tmp_path, capsys):
    from napari_cellseg.cli import main

    for workers in ("0", "-2"):
        code = main(
            [
                "segment",
                str(tmp_path),
                "--out",
                str(tmp_path / "o"),
                "--scheduler",
                "local",
                "--workers",
                workers,
            ]
        )
        assert code == 2
        assert (
            f"--workers must be >= 1 (processes of the local cluster), got {workers}"
            in capsys.readouterr().err
        )
    assert not (tmp_path / "o").exists()


def test_a_linked_image_is_named_after_the_link_as_without_dask(tmp_path, monkeypatch):
    """resolve() followed the link: the Dask run named xyz123.tif what a serial run names field1.tif."""
    from distributed import LocalCluster

    from napari_cellseg.inference import batch_dask
    from napari_cellseg.inference.batch import BatchSummary, FileReport, SegmentOptions

    def fake_segment_file(path, model_dir, out_dir, payload):
        return FileReport(path, Path(path).stem, "done", output=path)

    monkeypatch.setattr(batch_dask, "segment_file", fake_segment_file)
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "xyz123.png").write_bytes(b"")
    (tmp_path / "links").mkdir()
    link = tmp_path / "links" / "field1.png"
    link.symlink_to(tmp_path / "real" / "xyz123.png")
    summary = BatchSummary()
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        list(
            batch_dask.run_on_dask(
                [link], "model", tmp_path / "out", SegmentOptions(), cluster, None, summary
            )
        )
    (report,) = summary.reports
    assert report.image_id == "field1" and report.output == str(link)
