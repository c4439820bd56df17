"""Slurm's SIGTERM (and Ctrl-C) reach every process of the job: local Dask workers leave both to the command."""

from __future__ import annotations

import signal

from napari_cellseg.inference.batch_dask import close_dask, dask_client
from napari_cellseg.sample_data import SAMPLE_DIR
from napari_cellseg.training.sweep import SweepConfig, _dask_client


def _ignored(client) -> list[bool]:
    stop = (signal.SIGINT, signal.SIGTERM)
    return list(client.run(lambda: all(signal.getsignal(s) == signal.SIG_IGN for s in stop)).values())


def test_segment_local_workers_ignore_sigterm_and_this_process_keeps_it():
    ours = signal.getsignal(signal.SIGTERM)
    client, _, cluster = dask_client("local", 1)
    try:
        assert signal.getsignal(signal.SIGTERM) is ours
        assert _ignored(client) == [True]
    finally:
        close_dask(client, cluster)


def test_sweep_local_workers_ignore_sigterm(tmp_path):
    config = SweepConfig(data_dir=str(SAMPLE_DIR), out_dir=str(tmp_path), scheduler="local", local_workers=1,
                         threads=1)  # fmt: skip
    with _dask_client(config) as client:
        assert _ignored(client) == [True]
