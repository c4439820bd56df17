"""Class indices, names and colours shared by targets, losses, inference and the GUI."""

import re

BACKGROUND = 0
BOUNDARY = 1
INTERIOR = 2
CLASS_NAMES = ("background", "boundary", "interior")
# napari Labels colours for the 3-class annotation (RGBA, 0-1).
CLASS_COLORS = {
    BACKGROUND: (0.0, 0.0, 0.0, 0.0),
    BOUNDARY: (1.0, 0.85, 0.0, 1.0),
    INTERIOR: (0.1, 0.6, 1.0, 1.0),
}
MICROSCOPES = ("A", "B", "C")  # listed first by the panels; check/split allow them unless told others
# Any other tag a lab uses: a letter or digit first, then letters, digits, '_', '-', '.' (it names runs and files).
_TAG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}$")
DEFAULT_CLASS_WEIGHTS = (1.0, 5.0, 3.0)
DEFAULT_BOUNDARY_WEIGHT_BCE = 3.0


def check_microscope_tag(tag: object) -> str | None:
    """Why ``tag`` cannot be a microscope tag, or None when it can (``D``, ``E``, ``zeiss2``, ...)."""
    if not isinstance(tag, str) or not _TAG_PATTERN.match(tag):
        return (
            f"microscope tag {tag!r} is not a tag: use 1-32 letters, digits, '_', '-' or '.' "
            "(a letter or digit first)"
        )
    return None
