"""The h-maxima marker rules compared in experiments step 26 (watershed._h_maxima_markers's signature)."""

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import local_maxima

import napari_cellseg.inference.watershed as ws


def _parts(components, relief, height):
    core = components > 0
    relief = np.where(core, relief, np.float32(0))
    seed = np.where(core, relief - np.float32(height), np.float32(0))
    return core, relief, ws._reconstruct_by_dilation(seed, relief)


def _finish(components, core, markers, count):
    has_peak = np.zeros(int(components.max()) + 1, bool)
    has_peak[components[markers > 0]] = True
    unseeded = core & ~has_peak[components]
    markers[unseeded] = components[unseeded] + count
    return markers.astype(np.int32, copy=False)


def each_top(components, relief, height, tolerance):
    """Before step 26: every connected set of tops within ``tolerance`` of the height is a marker."""
    core, relief, rec = _parts(components, relief, height)
    markers, count = ndi.label((relief - rec >= np.float32(height - tolerance)) & core, structure=ws._FULL)
    return _finish(components, core, markers, count)


def tops_by_plateau(components, relief, height, tolerance):
    """Since step 26: the same tops, numbered by the regional maximum of the reconstruction they lie on."""
    core, relief, rec = _parts(components, relief, height)
    peaks = (relief - rec >= np.float32(height - tolerance)) & core
    plateaus, count = ndi.label(
        local_maxima(rec, connectivity=2, allow_borders=True) & core, structure=ws._FULL
    )
    return _finish(components, core, np.where(peaks, plateaus, 0), count)


def whole_plateau(components, relief, height, tolerance):
    """The whole regional maximum of the reconstruction as the marker (larger markers)."""
    core, relief, rec = _parts(components, relief, height)
    markers, count = ndi.label(
        local_maxima(rec, connectivity=2, allow_borders=True) & core, structure=ws._FULL
    )
    return _finish(components, core, markers, count)


RULES = {
    "each top (before)": each_top,
    "tops by plateau (since)": tops_by_plateau,
    "whole plateau": whole_plateau,
}
