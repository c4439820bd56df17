"""Class indices, names and colours shared by targets, losses, inference and the GUI."""

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
MICROSCOPES = ("A", "B", "C")
DEFAULT_CLASS_WEIGHTS = (1.0, 5.0, 3.0)
DEFAULT_BOUNDARY_WEIGHT_BCE = 3.0
