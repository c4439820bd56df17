"""Nuclei found in scikit-image's IHC image, as it is and haematoxylin only.

python ihc_counts.py default MODEL_DIR ...   ('default': the bundled model)
"""

import sys

from skimage import data

from napari_cellseg.inference.runtime import resolve_model
from napari_cellseg.inference.segment import segment_image
from napari_cellseg.inference.stains import haematoxylin_only

image = data.immunohistochemistry()
unmixed = haematoxylin_only(image)  # what `segment --haematoxylin-only` gives the network
for name in sys.argv[1:]:
    model, config = resolve_model(None if name == "default" else name, device="cpu")
    as_is = segment_image(model, config, image, device="cpu").n_instances
    only = segment_image(model, config, unmixed, device="cpu").n_instances
    print(f"{name}: IHC nuclei as it is {as_is}, haematoxylin only {only}", flush=True)
