"""``napari-cellseg segment`` as a batch job: its log, and SIGINT / SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from tiny_models import save_fitted_model, write_sample_images

from napari_cellseg.cli import main

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    return save_fitted_model(tmp_path_factory.mktemp("model"))


def test_a_log_gets_a_line_per_image_and_no_progress_bar(tmp_path, model_dir, capsys):
    write_sample_images(tmp_path / "in")
    args = ["segment", str(tmp_path / "in"), "--model", str(model_dir), "--out", str(tmp_path / "out")]
    assert main([*args, "--tile", "128"]) == 0
    err = capsys.readouterr().err  # captured: not a terminal, as `2> log` or a Slurm job
    assert "\r" not in err and "\x1b[" not in err  # a bar's redraws
    lines = [line for line in err.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in lines] == ["[1/2", "[2/2"] and all("cells" in x for x in lines)
    assert main([*args, "--tile", "128", "--quiet", "--overwrite"]) == 0
    assert "[1/2]" not in capsys.readouterr().err


@pytest.mark.parametrize(("sig", "status", "said"), [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])  # fmt: skip
def test_a_signal_stops_the_run_with_one_line_its_status_and_no_scratch(
    tmp_path, model_dir, sig, status, said
):
    write_sample_images(tmp_path / "in")
    out = tmp_path / "out"
    # The signal comes while the first image's files wait in their scratch folder.
    code = (
        "import sys, time, napari_cellseg.inference.batch as b\n"
        "def slow(*a, **k):\n"
        "    open(sys.argv[1], 'w').close(); time.sleep(60)\n"
        "b.publish = slow\n"
        "from napari_cellseg.cli import main\n"
        "sys.exit(main(sys.argv[2:]))\n"
    )
    started = tmp_path / "started"
    argv = ["segment", str(tmp_path / "in"), "--model", str(model_dir), "--out", str(out), "--tile", "128"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    # A job started in the background by a non-interactive shell (as CI may be) inherits
    # SIGINT ignored, and Python then keeps it ignored: give the child the default back.
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(started), *argv], stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not started.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert started.exists(), proc.stderr.read()
    os.kill(proc.pid, sig)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == status, err
    assert (
        err.strip().splitlines()[-1].startswith(f"napari-cellseg segment: {said}") and "Traceback" not in err
    )
    assert not any(out.iterdir()) if out.exists() else True  # no labels, no hidden scratch folder
