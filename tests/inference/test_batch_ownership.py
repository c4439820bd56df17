"""The batch tells its own outputs from the user's files by content: a user's a.tif is an image,
never stored cells; stale outputs go with their labels; names that collide fail up front; the
combined table covers the folder."""

from __future__ import annotations

import json
import shutil

import pytest
from tiny_models import save_fitted_model, write_sample_images

from napari_cellseg.cli import main
from napari_cellseg.inference.batch import SegmentOptions, segment_file, segment_files
from napari_cellseg.inference.measure import read_measurements
from napari_cellseg.io import read_image, read_tiff_layer

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    return save_fitted_model(tmp_path_factory.mktemp("model"))


def test_a_users_tif_beside_an_image_of_the_same_name_is_an_image_never_its_cells(
    tmp_path, model_dir, capsys
):
    # segment f/* --out f with a.png and the user's own (different) a.tif: a.tif was read as
    # a.png's cells (218 nonsense cells in a.csv), and --overwrite, as advised, replaced it.
    import tifffile

    first, second = write_sample_images(tmp_path / "samples")
    folder = tmp_path / "f"
    folder.mkdir()
    shutil.copyfile(first, folder / "a.png")
    tifffile.imwrite(folder / "a.tif", read_image(second), photometric="rgb")
    before = (folder / "a.tif").read_bytes()
    base = ["segment", str(folder / "a.png"), str(folder / "a.tif"), "--model", str(model_dir)]
    for extra in (["--measurements"], [], ["--overwrite"]):
        assert main([*base, "--out", str(folder), "--tile", "128", "--quiet", *extra]) == 1
        captured = capsys.readouterr()
        assert "segmenting 2 image(s)" in captured.err and "2 image(s): 0 segmented" in captured.out
        assert f"{folder / 'a.png'}: its labels would replace {folder / 'a.tif'}" in captured.err
        assert f"{folder / 'a.tif'}: same id as {folder / 'a.png'}" in captured.err
        assert (folder / "a.tif").read_bytes() == before
        assert sorted(p.name for p in folder.iterdir()) == ["a.png", "a.tif"]


def test_new_labels_take_the_earlier_runs_outputs_with_them_but_never_the_users(tmp_path, model_dir, capsys):
    # --overwrite with fewer outputs left the old a.geojson and a.csv beside the new cells, and a
    # later --measurements run "skipped" and put the stale rows in measurements.csv.
    (image,) = write_sample_images(tmp_path / "in", keys=("c_histology_1",))
    out = tmp_path / "out"
    args = ["segment", str(image), "--model", str(model_dir), "--out", str(out), "--tile", "128", "--quiet"]
    assert main([*args, "--measurements", "--geojson", "--overlays", "--imagej-rois"]) == 0
    expert = {"type": "FeatureCollection", "features": [], "note": "the expert's corrections"}
    (out / "c_histology_1_rois.zip").write_bytes(b"the user's own ROI set")  # replaced by the user
    (out / "c_histology_1.geojson").write_text(json.dumps(expert))
    assert main([*args, "--overwrite", "--diameter", "30"]) == 0
    # the old table, overlay and the combined table of the old cells are gone; the user's files stay
    kept = ["c_histology_1.geojson", "c_histology_1.tif", "c_histology_1_rois.zip"]
    assert sorted(p.name for p in out.iterdir()) == kept
    assert json.loads((out / "c_histology_1.geojson").read_text()) == expert
    n_cells = int(read_tiff_layer(out / "c_histology_1.tif")[0].max())
    capsys.readouterr()
    assert main([*args, "--measurements", "--geojson"]) == 1  # the expert's file is not the labels' own
    assert "c_histology_1.geojson already in" in capsys.readouterr().err
    assert not (out / "c_histology_1.csv").exists()
    assert main([*args, "--measurements"]) == 0  # drawn from the new cells
    assert len(read_measurements(out / "c_histology_1.csv")) == n_cells
    assert len(read_measurements(out / "measurements.csv")) == n_cells


def test_outputs_of_two_images_that_would_meet_fail_the_later_image_up_front(tmp_path, model_dir):
    # x_probabilities.png was never segmented ("skipped" on x's probabilities), and with
    # --overwrite its labels replaced x's probabilities.
    first, second = write_sample_images(tmp_path / "samples")
    folder = tmp_path / "in"
    folder.mkdir()
    x, x_probabilities = folder / "x.png", folder / "x_probabilities.png"
    shutil.copyfile(first, x)
    shutil.copyfile(second, x_probabilities)
    out = tmp_path / "out"
    for overwrite in (False, True):
        options = SegmentOptions(tile_size=128, save_probabilities=True, overwrite=overwrite)
        summary = segment_files([folder], model_dir, out, options)
        by_path = {r.path: r for r in summary.reports}
        assert by_path[str(x)].status == "done"
        failed = by_path[str(x_probabilities)]
        assert (
            failed.status == "failed"
            and "x_probabilities.tif would also be the probabilities of" in failed.message
        )
        assert str(x) in failed.message
        assert read_tiff_layer(out / "x_probabilities.tif")[2] == "image"  # still x's probabilities
    # an output asked for that would replace another image of the run (a user's b_overlay.png)
    shutil.copyfile(first, folder / "b.png")
    own = folder / "b_overlay.png"
    shutil.copyfile(second, own)
    before = own.read_bytes()
    options = SegmentOptions(tile_size=128, overlays=True, overwrite=True)
    summary = segment_files([folder / "b.png", own], model_dir, folder, options)
    by_path = {r.path: r for r in summary.reports}
    assert by_path[str(folder / "b.png")].status == "failed"
    assert f"its overlay would replace {own}" in by_path[str(folder / "b.png")].message
    assert by_path[str(own)].status == "done" and own.read_bytes() == before


def test_the_combined_table_covers_every_image_in_the_folder_in_id_order(tmp_path, model_dir):
    # A second run on one more image left measurements.csv with that image's rows only.
    paths = write_sample_images(tmp_path / "in")
    out = tmp_path / "out"
    base = ["--model", str(model_dir), "--out", str(out), "--tile", "128", "--quiet", "--measurements"]
    assert main(["segment", str(paths[1]), *base]) == 0
    assert main(["segment", str(paths[0]), *base]) == 0
    per_image = [read_measurements(out / f"{p.stem}.csv") for p in paths]
    assert read_measurements(out / "measurements.csv") == per_image[0] + per_image[1]
    (out / "notes.csv").write_text("image_id,label,area,centroid_y,centroid_x\nnotes,1,1,0,0\n")
    (out / "c_histology_1.csv").write_text(  # edited by the user: no longer the labels' table
        (out / "c_histology_1.csv").read_text() + "c_histology_1,999,1,0,0,0,0,0\n"
    )
    assert main(["segment", str(paths[1]), *base]) == 0
    assert read_measurements(out / "measurements.csv") == per_image[1]


def test_an_image_called_measurements_takes_its_name_back_from_the_combined_table(
    tmp_path, model_dir, capsys
):
    # "measurements.csv already in out without its labels (kept: they may be yours)"
    first, second = write_sample_images(tmp_path / "in")
    out = tmp_path / "out"
    base = ["--model", str(model_dir), "--out", str(out), "--tile", "128", "--quiet", "--measurements"]
    assert main(["segment", str(first), *base]) == 0
    named = second.rename(second.with_name("measurements.png"))
    assert main(["segment", str(named), *base]) == 0, capsys.readouterr().err
    own = read_measurements(out / "measurements.csv")
    assert own and {row["image_id"] for row in own} == {"measurements"}
    combined = read_measurements(out / "measurements-all.csv")
    assert [row["image_id"] for row in combined] == ["c_histology_1"] * (len(combined) - len(own)) + [
        "measurements"
    ] * len(own)


def test_an_image_name_that_is_not_utf8_gets_its_table(tmp_path, model_dir):
    # "'utf-8' codec can't encode character '\udce9'", with --measurements only
    import os

    (image,) = write_sample_images(tmp_path / "in", keys=("c_histology_1",))
    try:
        named = image.rename(image.with_name(os.fsdecode(b"caf\xe9.png")))
    except (OSError, UnicodeError):
        pytest.skip("this file system keeps names in one encoding")
    out = tmp_path / "out"
    options = SegmentOptions(tile_size=128, measurements=True, geojson=True)
    report = segment_file(named, model_dir, out, options)
    assert report.status == "done", report.message
    table = out / f"{named.stem}.csv"
    rows = read_measurements(table)  # UTF-8 text: pandas and CellProfiler read it
    assert len(rows) == report.n_instances and rows[0]["image_id"] == "caf\\udce9"
    assert json.loads((out / f"{named.stem}.geojson").read_text())["features"][0]["properties"][
        "name"
    ].startswith("caf\udce9")


def test_a_users_file_beside_labels_of_an_earlier_version_is_trusted_but_never_removed(
    tmp_path, model_dir, capsys
):
    # Labels of an earlier version record no outputs: adding one took the user's geojson beside
    # them into the record as the plugin's own, and a later --overwrite deleted it.
    from napari_cellseg.io import write_tiff_layer

    (image,) = write_sample_images(tmp_path / "in", keys=("c_histology_1",))
    out = tmp_path / "out"
    args = ["segment", str(image), "--model", str(model_dir), "--out", str(out), "--tile", "128", "--quiet"]
    assert main([*args, "--measurements"]) == 0
    labels_path = out / "c_histology_1.tif"
    labels, attributes, _ = read_tiff_layer(labels_path)
    metadata = {k: v for k, v in attributes["metadata"].items() if k != "outputs"}  # as before the record
    write_tiff_layer(labels_path, labels, "labels", {**attributes, "metadata": metadata})
    expert = {"type": "FeatureCollection", "features": [], "note": "the expert's own"}
    (out / "c_histology_1.geojson").write_text(json.dumps(expert))
    assert main([*args, "--geojson", "--measurements", "--imagej-rois"]) == 0  # trusted, as then
    assert "imagej_rois" in capsys.readouterr().out or (out / "c_histology_1_rois.zip").is_file()
    stored = read_tiff_layer(labels_path)[1]["metadata"]
    assert set(stored["outputs"]) == {"imagej_rois"}  # only what this run wrote is the plugin's
    assert set(stored["outputs_by_name"]) == {"geojson", "measurements"}
    assert main([*args, "--overwrite"]) == 0
    assert json.loads((out / "c_histology_1.geojson").read_text()) == expert  # never removed
    assert not (out / "c_histology_1_rois.zip").exists()  # the plugin's own goes with the old cells


def test_a_combined_table_edited_since_is_the_users_never_refreshed_or_removed_unasked(tmp_path, model_dir):
    # The table was told by its columns alone: a copied or edited one was rewritten, or removed
    # by --overwrite without --measurements.
    (image,) = write_sample_images(tmp_path / "in", keys=("c_histology_1",))
    out = tmp_path / "out"
    args = ["segment", str(image), "--model", str(model_dir), "--out", str(out), "--tile", "128", "--quiet"]
    assert main([*args, "--measurements"]) == 0
    table = out / "measurements.csv"
    assert main([*args, "--overwrite", "--diameter", "30"]) == 0  # the plugin's own table goes
    assert not table.exists() and not (out / ".cellseg_tables.json").exists()
    assert main([*args, "--overwrite", "--measurements"]) == 0
    edited = table.read_text() + "# checked by Dr. A\n"
    table.write_text(edited)
    assert main([*args, "--overwrite", "--diameter", "30"]) == 0
    assert table.read_text() == edited  # the user's now: left as it is
