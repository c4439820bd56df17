"""A model without ``object_diameter`` (its training scale): ``--diameter`` is refused, its default noted."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest
from tiny_models import fitted_model, save_fitted_model, write_sample_images

from napari_cellseg.cli import main

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    return save_fitted_model(tmp_path_factory.mktemp("model"))


def _unscaled_model(model_dir, folder, default_diameter=None):
    """A copy of the model whose config.json has no object_diameter."""
    shutil.copytree(model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(object_diameter=None, default_diameter=default_diameter)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize(("diameter", "shown"), [("30", "--diameter 30:"), ("0", "--diameter 0 (estimate):")])
def test_a_diameter_for_a_model_without_training_scale_is_refused_before_any_image(
    tmp_path, model_dir, capsys, diameter, shown
):
    model = _unscaled_model(model_dir, tmp_path / "model")
    (path,) = write_sample_images(tmp_path / "in", keys=("c_histology_2",))
    out = tmp_path / "out"
    args = ["segment", str(path), "--model", str(model), "--out", str(out), "--diameter", diameter]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"napari-cellseg segment: error: {shown} the model {model} has no object_diameter")
    assert "leave out --diameter" in err and err.count("\n") == 1  # one line
    assert not caught and not out.exists()


def test_the_model_s_own_default_diameter_is_one_note_per_image_not_a_warning(tmp_path, model_dir, capsys):
    model = _unscaled_model(model_dir, tmp_path / "model", default_diameter=0.0)
    paths = write_sample_images(tmp_path / "in")
    args = ["segment", str(tmp_path / "in"), "--model", str(model), "--out", str(tmp_path / "out")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([*args, "--tile", "128", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert [str(w.message) for w in caught] == []  # no raw UserWarning with its file and line
    notes = [line for line in err.splitlines() if "no object_diameter" in line]
    assert len(notes) == len(paths) and all(line.startswith("note: ") for line in notes)
    assert (
        "an estimated nucleus diameter (its default_diameter): it is segmented at its own scale" in notes[0]
    )


def test_segment_image_warns_once_in_its_own_words(tmp_path):
    from napari_cellseg.inference.segment import UnscaledWarning, segment_image
    from napari_cellseg.sample_data import load_sample

    model, config = fitted_model()
    unscaled = type(config).from_dict({**config.to_dict(), "object_diameter": None})
    image = load_sample("c_histology_2")[0][:128, :128]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = segment_image(model, unscaled, image, diameter=30, tile_size=128)
    assert [w.category for w in caught] == [UnscaledWarning]
    assert "a nucleus diameter of 30 px: it is segmented at its own scale" in str(caught[0].message)
    assert result.scale_factor == 1.0 and result.diameter is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        segment_image(model, unscaled, image, diameter=30, tile_size=128, warn_unscaled=False)
    assert caught == []


@pytest.mark.parametrize("big_image_pixels", [10**12, 1])  # in memory, and block by block
def test_the_batch_notes_it_for_both_paths(tmp_path, model_dir, big_image_pixels):
    from napari_cellseg.inference.batch import SegmentOptions, segment_file

    model = _unscaled_model(model_dir, tmp_path / "model")
    (path,) = write_sample_images(tmp_path / "in", keys=("c_histology_2",))
    options = SegmentOptions(tile_size=128, diameter=30, big_image_pixels=big_image_pixels)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = segment_file(path, model, tmp_path / "out", options)
    assert report.status == "done", report.message
    assert [str(w.message) for w in caught] == []
    assert "no object_diameter" in report.note and "a nucleus diameter of 30 px" in report.note
