"""Weights files and model folders given to the wrong option: one sentence, no traceback."""

from __future__ import annotations

import re

import pytest

from napari_cellseg.cli import main

TINY_ARCH = "mobilenetv3_small_050"  # as in conftest.py


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("text.pt", b"hello", "text.pt: not a PyTorch weights file"),
        ("empty.pt", b"", r"empty.pt: empty file \(0 bytes\)"),
        ("empty.safetensors", b"", r"empty.safetensors: empty file \(0 bytes\)"),
    ],
)
def test_import_m2_names_a_file_that_holds_no_weights(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    assert main(["import-m2", str(path), "--arch", TINY_ARCH, "--out", str(tmp_path / "m2")]) == 2
    err = capsys.readouterr().err
    assert "import-m2: error:" in err and "Traceback" not in err
    assert re.search(message, err), err
    assert not (tmp_path / "m2").exists()
