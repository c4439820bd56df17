"""A dataset whose manifest uses its own microscope tags (D, E) trains like an A/B/C one.

``check`` and ``split`` take ``--microscopes D E`` (docs/dataset.md); ``train`` and
``sweep`` take the tags the dataset uses and refuse, naming the tags there are, a
``--microscopes`` or ``--oversample`` tag that no image of the split has.
"""

from __future__ import annotations

import shutil

import pytest

from napari_cellseg.cli import main
from napari_cellseg.config import ConfigError
from napari_cellseg.data.dataset import CellDataset, DatasetError
from napari_cellseg.sample_data import SAMPLE_DIR, list_samples
from napari_cellseg.training.config import TrainConfig
from napari_cellseg.training.sweep import SweepConfig, iter_sweep
from napari_cellseg.training.sweep_grid import SweepError, SweepGrid

DEV_KEY = "c_histology_2"  # as in conftest: the dev image

torch = pytest.importorskip("torch")

RENAME = {"A": "D", "B": "E", "C": "E"}  # the sample's microscopes as another lab's
QUICK = ["--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "1", "--threads", "1", "--quiet",
         "-l", "2", "--la", "2", "--max-dev-images", "1", "--dev-metric", "pixel_f1", "--patch-size", "64"]  # fmt: skip


@pytest.fixture
def lab_de(tmp_path):
    """The package samples with tags D and E, and their split (5 train, 1 dev)."""
    root = tmp_path / "labDE"
    shutil.copytree(SAMPLE_DIR, root, ignore=shutil.ignore_patterns("*.py", "__pycache__", "README.md"))
    lines = (SAMPLE_DIR / "manifest.csv").read_text().splitlines()
    rows = [lines[0]]
    for line in lines[1:]:
        image_id, tag, rest = line.split(",", 2)
        rows.append(f"{image_id},{RENAME[tag]},{rest}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    split = ["id,microscope,subset,group"]
    for key, sample in list_samples().items():
        split.append(f"{sample.id},{RENAME[sample.microscope]},{'dev' if key == DEV_KEY else 'train'},")
    (tmp_path / "split.csv").write_text("\n".join(split) + "\n")
    return root, tmp_path / "split.csv"


def test_the_dataset_opens_with_its_own_tags(lab_de):
    root, _ = lab_de
    with pytest.raises(DatasetError, match="unknown microscope 'D'"):
        CellDataset.open(root, microscopes=("A", "B", "C"))  # as check and split open it by default
    # by default its own tags: training, tune-watershed and Review's evaluation all open it
    assert CellDataset.open(root).microscopes == ("D", "E")
    from napari_cellseg.app.annotation import is_listed, saved_labels

    first = CellDataset.open(root, microscopes=None).ids[0]  # the Annotate panel opens its saved cells
    assert is_listed(root, first) and saved_labels(root, first)["cells"].max() > 0
    (root / "manifest.csv").write_text((root / "manifest.csv").read_text().replace(",D,", ",D E,", 1))
    with pytest.raises(DatasetError, match="microscope tag 'D E' is not a tag"):
        CellDataset.open(root, microscopes=None)


def test_train_config_takes_any_tag_and_refuses_unsafe_ones():
    TrainConfig(data_dir="d", out_dir="o", microscopes=("D", "E"), sample_weights={"E": 2.0}).validate()
    assert TrainConfig().microscopes == ()  # every microscope of the dataset
    with pytest.raises(ConfigError, match=r"microscope tag '\.\./x' is not a tag"):
        TrainConfig(data_dir="d", out_dir="o", microscopes=("../x",)).validate()
    # a run stored before the default became "every tag" (A, B, C then) resumes
    assert TrainConfig(microscopes=("A", "B", "C")).incompatible_with(TrainConfig()) == []
    assert TrainConfig(microscopes=("C",)).incompatible_with(TrainConfig()) != []


def test_train_runs_on_d_and_e_and_names_unknown_tags(tmp_path, lab_de, capsys):
    root, split = lab_de
    base = ["train", "--data", str(root), "--split", str(split), *QUICK]
    assert main([*base, "--out", str(tmp_path / "all")]) == 0  # default: every tag of the dataset
    assert main([*base, "--out", str(tmp_path / "d"), "--microscopes", "D", "--oversample", "D=2"]) == 0
    assert (tmp_path / "d" / "model.safetensors").is_file()
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "c"), "--microscopes", "D", "C"]) == 2
    err = capsys.readouterr().err
    assert "no image of microscope 'C'" in err and "its microscopes are: D, E" in err
    assert main([*base, "--out", str(tmp_path / "c"), "--oversample", "C=3"]) == 2
    assert "--oversample" in capsys.readouterr().err and not (tmp_path / "c").exists()


def test_sweep_checks_its_runs_tags_against_the_dataset(tmp_path, lab_de):
    root, split = lab_de
    config = SweepConfig(data_dir=str(root), split_path=str(split), out_dir=str(tmp_path / "sweep"))
    base = {"epochs": 1, "steps_per_epoch": 1, "batch_size": 1, "patch_size": 64, "num_threads": 1}
    grid = SweepGrid(base=base, grid={"microscopes": [["D", "E"], ["C"]]})

    def no_training(config, **kwargs):
        raise AssertionError("a run was trained")

    with pytest.raises(
        SweepError, match=r"microscopes_C: microscopes \(--microscopes\): no image of microscope 'C'"
    ):
        next(iter_sweep(grid, config, train_fn=no_training))
