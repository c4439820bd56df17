"""Time per dev C image end to end (nucleus size estimated), with the first pass at the image's
own scale only (before step 27) and with the shrunk passes too, as stored and enlarged 2x.

OMP_NUM_THREADS=2 python estimate_time.py DATA SPLIT
"""

import sys
from pathlib import Path

import napari_cellseg.inference.segment as segment

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "size_estimate"))
from estimate_time import time_settings  # step 22's timing, another setting toggled

time_settings(
    *sys.argv[1:3], "ESTIMATE_COARSE_FACTORS", ((), segment.ESTIMATE_COARSE_FACTORS), "shrunk passes"
)
