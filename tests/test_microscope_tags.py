"""The microscope tags the panels offer and take: A, B, C, a dataset's own, one typed."""

from __future__ import annotations

import pytest

from napari_cellseg.app.microscope_tags import dataset_tags, parse_tag, tag_choices, tag_to_save


def test_choices_are_a_b_c_then_the_other_valid_tags_once():
    assert tag_choices() == ("A", "B", "C")
    assert tag_choices(("E", "C", "D"), {"zeiss2", "D", "bad tag"}) == ("A", "B", "C", "D", "E", "zeiss2")


def test_a_datasets_tags_come_from_its_manifest(tmp_path):
    assert dataset_tags(None) == () and dataset_tags(tmp_path) == ()  # no manifest: nothing to add
    (tmp_path / "manifest.csv").write_text("id,microscope\na,E\nb,D\nc,E\nd,D E\n")
    assert dataset_tags(tmp_path) == ("D", "E")  # the row tagged 'D E' is no tag: left out
    folder = tmp_path / "odd"
    (folder / "manifest.csv").mkdir(parents=True)  # unreadable: the lists offer A, B, C
    assert dataset_tags(folder) == ()


def test_a_typed_tag_is_checked_and_a_bad_one_says_why():
    assert parse_tag(" zeiss2 ") == "zeiss2"
    with pytest.raises(ValueError, match=r"microscope tag 'D E' is not a tag: use 1-32 letters"):
        parse_tag("D E")
    with pytest.raises(ValueError, match="no microscope tag: choose A, B, C or type"):
        parse_tag("  ")


def test_saving_needs_a_tag_and_takes_a_labs_own():
    assert tag_to_save("D") == "D"
    with pytest.raises(ValueError, match=r"before saving: it has no tag yet$"):
        tag_to_save(None)
    with pytest.raises(ValueError, match=r"before saving: microscope tag 'my scope' is not a tag"):
        tag_to_save("my scope")
