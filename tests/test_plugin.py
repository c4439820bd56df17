"""The plugin as napari sees it: manifest, contributions, packaging."""

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_manifest_validates():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-cellseg")
    manifest.validate_imports()
    names = {w.display_name for w in manifest.contributions.widgets}
    assert names == {"Annotate", "Dataset", "Fine-tune", "Segment", "Review"}
    samples = {s.key for s in manifest.contributions.sample_data}
    assert {"c_histology_1", "c_histology_2", "b_brightfield"} <= samples


def test_npe2_validate_command():
    npe2 = Path(sys.executable).with_name("npe2")
    result = subprocess.run([str(npe2), "validate", "napari-cellseg"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_discovery_and_samples_do_not_import_torch():
    code = textwrap.dedent(
        """
        import sys
        import npe2
        pm = npe2.PluginManager.instance()
        pm.discover()
        mf = pm.get_manifest("napari-cellseg")
        contributions = list(pm.iter_widgets()) + list(mf.contributions.sample_data)
        assert contributions
        import napari_cellseg.sample_data as s
        layers = s.c_histology_1()
        from napari_cellseg.cli import build_parser
        build_parser().format_help()
        from napari_cellseg.napari_io import napari_get_reader
        print("torch" in sys.modules, len(layers))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "2"], out.stdout + out.stderr


def test_cli_help_and_version():
    exe = Path(sys.executable).with_name("napari-cellseg")
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    from napari_cellseg import __version__

    assert version.stdout.strip() == f"napari-cellseg {__version__}"
    helptext = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True).stdout
    assert "demo" in helptext


@pytest.mark.slow
def test_wheel_carries_manifest_and_package_data(tmp_path):
    wheel_dir = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheel_dir),
            str(REPO_ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheel_dir.glob("napari_cellseg-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "napari_cellseg/napari.yaml" in names
    assert sum(n.startswith("napari_cellseg/sample_data/images/") for n in names) == 6
    # Install into a clean target and import from there, not from the checkout.
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(target)!r})
        import napari_cellseg, npe2
        from importlib.metadata import distribution
        assert napari_cellseg.__file__.startswith({str(target)!r}), napari_cellseg.__file__
        mf = npe2.PluginManifest.from_distribution("napari-cellseg")
        assert str(distribution("napari-cellseg")._path).startswith({str(target)!r})
        from napari_cellseg.sample_data import load_sample, list_samples
        image, mask, sample = load_sample("c_histology_1")
        print(len(list_samples()), image.shape, int(mask.max()), len(mf.contributions.widgets))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["6", "(256,", "320,", "3)", "97", "5"]


def test_core_modules_import_neither_qt_nor_napari():
    """Everything outside ``_qt`` (``app/`` included) must run without a GUI."""
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        import napari_cellseg
        names = [m.name for m in pkgutil.walk_packages(napari_cellseg.__path__, "napari_cellseg.")
                 if "._qt" not in m.name]
        for name in names:
            importlib.import_module(name)
        gui = sorted(m for m in sys.modules if m.split(".")[0] in ("napari", "qtpy", "PyQt5", "PyQt6",
                                                                    "PySide2", "PySide6", "vispy"))
        print(len(names), "modules;", "GUI modules loaded:", gui)
        assert not gui, gui
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert int(result.stdout.split()[0]) > 60  # the walk found the package's modules


def test_save_dialog_names_each_writer_once():
    # napari puts the plugin's name before each writer's: "napari-cellseg napari-cellseg TIFF" was said twice
    import npe2
    from napari.layers import Image, Labels
    from napari.plugins._npe2 import file_extensions_string_for_layers

    npe2.PluginManager.instance().discover()
    for layer, expected in (
        (Image(np.zeros((8, 8), np.uint8)), ["TIFF with scale and metadata (*.tif *.tiff)"]),
        (
            Labels(np.zeros((8, 8), np.uint8)),
            [
                "TIFF with scale and metadata (*.tif *.tiff)",
                "cell outlines for QuPath (GeoJSON) (*.geojson)",
                "cell outlines for Fiji (ImageJ ROI set) (*.zip)",
            ],
        ),
    ):
        filters = file_extensions_string_for_layers([layer])[0].split(";;")
        ours = [f.removeprefix("napari-cellseg ") for f in filters if f.startswith("napari-cellseg ")]
        assert ours == expected, filters
