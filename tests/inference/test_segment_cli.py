"""``napari-cellseg segment``: outputs, no overwriting, bad files, default model, measurements."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from tiny_models import save_fitted_model, write_sample_images

from napari_cellseg.cli import main
from napari_cellseg.data.outlines_import import read_outlines
from napari_cellseg.io import read_image, read_tiff_layer

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    return save_fitted_model(tmp_path_factory.mktemp("model"))


def test_segment_writes_labels_and_keeps_them_on_a_second_run(tmp_path, model_dir, capsys):
    paths = write_sample_images(tmp_path / "in")
    out = tmp_path / "out"
    args = ["segment", str(tmp_path / "in"), "--model", str(model_dir), "--out", str(out), "--tile", "128"]
    assert main([*args, "--measurements", "--geojson", "--overlays", "--imagej-rois", "--quiet"]) == 0
    stdout = capsys.readouterr().out
    assert "2 segmented" in stdout and "0 failed" in stdout
    for path in paths:
        labels, _, kind = read_tiff_layer(out / f"{path.stem}.tif")
        assert kind == "labels" and labels.max() > 5
        outlines = json.loads((out / f"{path.stem}.geojson").read_text())["features"]
        assert sorted(f["properties"]["label"] for f in outlines) == list(range(1, labels.max() + 1))
        rois = read_outlines(out / f"{path.stem}_rois.zip", labels.shape).labels
        cells = labels > 0  # Fiji's ROI set holds the same cells (ImageJ polygons fill holes)
        np.testing.assert_array_equal(rois[cells], labels[cells])
        assert set(np.unique(rois)) == set(np.unique(labels))
        overlay = read_image(out / f"{path.stem}_overlay.png")
        assert overlay.shape == (*labels.shape, 3) and (overlay == (255, 217, 0)).all(axis=-1).any()
    header = (out / "measurements.csv").read_text().splitlines()[0]
    assert header.startswith("image_id,label,area,centroid_y,centroid_x")
    before = (out / f"{paths[0].stem}.tif").stat().st_mtime_ns
    assert main([*args, "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "2 skipped" in captured.out and "--overwrite" in captured.err
    assert (out / f"{paths[0].stem}.tif").stat().st_mtime_ns == before


def test_tta_option_averages_the_flips_and_turns(tmp_path, model_dir):
    from napari_cellseg.inference.predict import predict_probabilities
    from napari_cellseg.inference.runtime import resolve_model
    from napari_cellseg.io import read_image

    (path,) = write_sample_images(tmp_path / "in", keys=("c_histology_2",))
    common = [
        "segment",
        str(path),
        "--model",
        str(model_dir),
        "--tile",
        "128",
        "--save-probabilities",
        "--quiet",
    ]
    assert main([*common, "--out", str(tmp_path / "tta"), "--tta"]) == 0
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    tta, _, _ = read_tiff_layer(tmp_path / "tta" / f"{path.stem}_probabilities.tif")
    plain, _, _ = read_tiff_layer(tmp_path / "plain" / f"{path.stem}_probabilities.tif")
    model, config = resolve_model(model_dir, device="cpu")
    expected = predict_probabilities(model, config, read_image(path), tile_size=128, overlap=64, tta=True)
    np.testing.assert_allclose(tta, expected, atol=2e-3)
    assert np.abs(tta - plain).max() > 1e-2
    assert main([*common, "--out", str(tmp_path / "zoom"), "--tta-zoom"]) == 0
    zoom, _, _ = read_tiff_layer(tmp_path / "zoom" / f"{path.stem}_probabilities.tif")
    expected = predict_probabilities(
        model, config, read_image(path), tile_size=128, overlap=64, tta_zooms=(0.8, 1.0, 1.25)
    )
    np.testing.assert_allclose(zoom, expected, atol=2e-3)
    assert np.abs(zoom - plain).max() > 1e-2


def test_haematoxylin_only_segments_the_unmixed_slide_and_measures_the_original(tmp_path, model_dir):
    from napari_cellseg.inference.predict import predict_probabilities
    from napari_cellseg.inference.runtime import resolve_model
    from napari_cellseg.inference.stains import haematoxylin_only
    from napari_cellseg.io import read_image

    (path,) = write_sample_images(tmp_path / "in", keys=("c_histology_2",))
    out = tmp_path / "out"
    args = ["segment", str(path), "--model", str(model_dir), "--tile", "128", "--out", str(out)]
    assert main([*args, "--save-probabilities", "--measurements", "--haematoxylin-only", "--quiet"]) == 0
    probabilities, _, _ = read_tiff_layer(out / f"{path.stem}_probabilities.tif")
    _, attributes, _ = read_tiff_layer(out / f"{path.stem}.tif")
    model, config = resolve_model(model_dir, device="cpu")
    image = read_image(path)
    unmixed = predict_probabilities(model, config, haematoxylin_only(image), tile_size=128, overlap=64)
    np.testing.assert_allclose(probabilities, unmixed, atol=2e-3)
    assert (
        np.abs(probabilities - predict_probabilities(model, config, image, tile_size=128, overlap=64)).max()
        > 1e-2
    )
    assert attributes["metadata"]["haematoxylin_only"] is True
    # Measurements read the slide as it is, not the unmixed one.
    header, first = (out / f"{path.stem}.csv").read_text().splitlines()[:2]
    assert (
        "mean_intensity_0" in header
        and float(first.split(",")[header.split(",").index("mean_intensity_0")]) > 1
    )


def test_bad_files_are_named_the_run_goes_on_and_exits_non_zero(tmp_path, model_dir, capsys):
    paths = write_sample_images(tmp_path / "in", keys=("c_histology_2",))
    empty = tmp_path / "in" / "empty.png"
    empty.write_bytes(b"")
    code = main(["segment", str(paths[0]), str(empty), "--model", str(model_dir), "--out", str(tmp_path / "out"), "--quiet"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1
    assert "empty.png" in captured.err
    assert "1 segmented" in captured.out and "1 failed" in captured.out
    assert (tmp_path / "out" / "c_histology_2.tif").is_file()


def test_without_a_bundled_model_the_user_is_told_to_pass_one(tmp_path, monkeypatch, capsys):
    import napari_cellseg.inference.runtime as runtime

    monkeypatch.setattr(runtime, "DEFAULT_MODEL_DIR", tmp_path / "no-default-model")
    paths = write_sample_images(tmp_path / "in", keys=("c_histology_2",))
    assert main(["segment", str(paths[0]), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no bundled default model" in err and "--model" in err


def test_bad_options_are_refused(tmp_path, model_dir, capsys):
    paths = write_sample_images(tmp_path / "in", keys=("c_histology_2",))
    base = ["segment", str(paths[0]), "--model", str(model_dir)]
    assert main([*base, "--diameter", "-3"]) == 2
    assert "--diameter" in capsys.readouterr().err
    assert main([*base, "--overlap", "600"]) == 2
    assert "--overlap" in capsys.readouterr().err
    assert main(["segment", str(tmp_path / "nothing-here"), "--model", str(model_dir)]) == 1
    assert main([*base, "--batch-size", "-3"]) == 2
    assert "--batch-size" in capsys.readouterr().err
    assert main([*base, "--workers", "2"]) == 2
    assert "--scheduler local" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("x")
    assert main([*base, "--out", str(tmp_path / "a-file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    folder = paths[0].parent
    assert main(["segment", str(folder), "--model", str(model_dir), "--out", str(folder)]) == 2
    assert "also an input folder" in capsys.readouterr().err


def test_a_broken_model_fails_once_before_any_image(tmp_path, model_dir, capsys):
    import shutil

    broken = tmp_path / "broken-model"
    shutil.copytree(model_dir, broken)
    (broken / "config.json").write_text("{ not json")
    paths = write_sample_images(tmp_path / "in")
    assert main(["segment", str(paths[0].parent), "--model", str(broken), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("config.json") == 1 and not (tmp_path / "o").exists()


def test_channels_first_rgb_is_segmented_as_planes_with_a_note(tmp_path, model_dir, capsys):
    import tifffile

    image = np.zeros((3, 64, 80), np.uint8)
    tifffile.imwrite(tmp_path / "rgb_first.tif", image, photometric="minisblack")  # saved as 3 planes
    args = [
        "segment",
        str(tmp_path / "rgb_first.tif"),
        "--model",
        str(model_dir),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(args) == 0
    assert "read as 3 planes" in capsys.readouterr().err


def test_help_does_not_import_torch():
    code = (
        "import sys; from napari_cellseg.cli import build_parser; build_parser(); "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_an_unreachable_dask_scheduler_is_one_clear_error(tmp_path, model_dir, monkeypatch, capsys):
    distributed = pytest.importorskip("distributed")

    class RefusingClient(distributed.Client):
        def __init__(self, *args, **kwargs):
            raise OSError("Timed out trying to connect")

        def __del__(self):
            pass

    monkeypatch.setattr(distributed, "Client", RefusingClient)
    paths = write_sample_images(tmp_path / "in", keys=("c_histology_2",))
    args = ["segment", str(paths[0]), "--model", str(model_dir), "--out", str(tmp_path / "o")]
    assert main([*args, "--scheduler", "tcp://127.0.0.1:1", "--quiet"]) == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in capsys.readouterr().err


def test_a_small_image_gets_its_note_once_and_no_warning_line(tmp_path, model_dir, capsys):
    import tifffile

    tifffile.imwrite(tmp_path / "tiny.tif", np.full((20, 30), 7, np.uint8))
    assert (
        main(["segment", str(tmp_path / "tiny.tif"), "--model", str(model_dir), "--out", str(tmp_path / "o")])
        == 0
    )
    err = capsys.readouterr().err
    assert err.count("only 20 x 30 px") == 1 and "note: " in err and "SmallImageWarning" not in err
