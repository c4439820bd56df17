"""SIGTERM (Slurm's time limit) stops training as Ctrl-C does, after the step, with status 143."""

from __future__ import annotations

import os
import signal

from test_pretrain_cancel import ARCH, _class_folder

from napari_cellseg.cli import main
from napari_cellseg.training import pretrain_commands


class _TermBeforeFirstStep(pretrain_commands._GracefulStop):
    sent = False

    def __call__(self) -> bool:  # the job's time limit comes before the first step
        if not _TermBeforeFirstStep.sent:
            _TermBeforeFirstStep.sent = True
            os.kill(os.getpid(), signal.SIGTERM)
        return super().__call__()


def test_sigterm_stops_after_the_step_and_exits_143(tmp_path, monkeypatch, capsys):
    root, out = _class_folder(tmp_path / "cls"), tmp_path / "m2"
    argv = ["pretrain", "--data", str(root), "--arch", ARCH, "--out", str(out), "--epochs", "2",
            "--input-size", "32", "--threads", "1", "--val-fraction", "0", "--quiet"]  # fmt: skip
    monkeypatch.setattr(pretrain_commands, "_GracefulStop", _TermBeforeFirstStep)
    assert main(argv) == 143
    err = capsys.readouterr().err
    assert "stopping after this step (a second SIGTERM to interrupt at once)" in err
    assert "stopped after 0 of 2 epoch(s): nothing saved" in err and "terminated" not in err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handed back


def test_handlers_set_outside_python_are_handed_back_as_the_default(tmp_path, monkeypatch, capsys):
    # signal.signal answers None for a handler set outside Python (an embedding application)
    real = signal.signal
    monkeypatch.setattr(signal, "signal", lambda signum, handler: (real(signum, handler), None)[1])
    try:
        assert main(["evaluate", "--pred", str(tmp_path), "--gt", str(tmp_path)]) != 0  # any command
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # not main's handler, left behind
        with pretrain_commands._GracefulStop():
            pass  # handing None back was a TypeError
        assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL
    finally:
        real(signal.SIGTERM, signal.SIG_DFL)
        real(signal.SIGINT, signal.default_int_handler)
