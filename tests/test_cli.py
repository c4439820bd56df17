"""The command line's entry point."""

from napari_cellseg.cli import main


def test_no_command_prints_the_usage_and_fails(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "usage:" in err and "segment" in err
