"""The model and loss modules that CLI/GUI code may import at module level stay torch-free."""

from __future__ import annotations

import subprocess
import sys


def test_importing_configs_and_checkpoint_helpers_does_not_import_torch():
    code = (
        "import sys\n"
        "import napari_cellseg.models.checkpoint, napari_cellseg.models.m2\n"
        "import napari_cellseg.models.m2_convert, napari_cellseg.models.stages\n"
        "import napari_cellseg.models.defaults, napari_cellseg.training.losses\n"
        "heavy = sorted(m for m in ('torch', 'timm', 'safetensors') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"imported at module level: {result.stdout.strip()}"
