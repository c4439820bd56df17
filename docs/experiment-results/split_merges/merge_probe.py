"""Can merging adjacent predicted objects repair the split cells? (experiments.md step 19)

The model's objects on the held-out C images (nucleus size estimated), then two rules that
merge neighbours, each over a small grid, scored by pooled AP@0.5 and DSB against the masks:

- *border evidence*: the mean P(interior) (or P(boundary)) over the pixels on both sides of the
  shared border above (below) a threshold, borders of at least ``min_len`` pixel pairs;
- *shape*: the union's solidity at least ``s``, the shared border at least ``r`` times the
  square root of the smaller object's area, and the union at most ``a`` times the median area.

python merge_probe.py DATA SPLIT [--subset dev] [--model DIR]   (default: the bundled model)
"""

from __future__ import annotations

import argparse

import numpy as np
from skimage.measure import regionprops

from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.inference.runtime import resolve_model
from napari_cellseg.inference.segment import segment_image
from napari_cellseg.metrics import image_metrics, pool_metrics
from napari_cellseg.training.holdout import holdout_ids


def border_stats(labels: np.ndarray, prob: np.ndarray) -> dict:
    """{(a, b): [sum P(interior), sum P(boundary), pixel pairs]} over 4-neighbour a-b borders."""
    stats: dict = {}
    for first, second in (
        (np.s_[:-1, :], np.s_[1:, :]),
        (np.s_[:, :-1], np.s_[:, 1:]),
    ):
        a, b = labels[first], labels[second]
        interior = (prob[2][first] + prob[2][second]) / 2
        boundary = (prob[1][first] + prob[1][second]) / 2
        on_border = (a != b) & (a > 0) & (b > 0)
        for x, y, i, bd in zip(a[on_border], b[on_border], interior[on_border], boundary[on_border]):
            entry = stats.setdefault((min(x, y), max(x, y)), [0.0, 0.0, 0])
            entry[0] += i
            entry[1] += bd
            entry[2] += 1
    return stats


def relabel(labels: np.ndarray, pairs) -> np.ndarray:
    """``labels`` with each pair of objects joined (union-find)."""
    parent: dict = {}

    def root(x):
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    if not parent:
        return labels
    lut = np.array([root(x) for x in range(int(labels.max()) + 1)])
    return lut[labels]


def by_evidence(labels, stats, kind, threshold, min_len):
    def weak(entry):
        mean = entry[0 if kind == "interior" else 1] / entry[2]
        return mean > threshold if kind == "interior" else mean < threshold

    return relabel(labels, [k for k, e in stats.items() if e[2] >= min_len and weak(e)])


def by_shape(labels, stats, solidity, ratio, area_factor):
    areas = {p.label: p.area for p in regionprops(labels)}
    median = float(np.median(list(areas.values()))) if areas else 0.0
    pairs = []
    for (a, b), (_, _, n) in stats.items():
        if n / 2 / np.sqrt(min(areas[a], areas[b])) < ratio or areas[a] + areas[b] > area_factor * median:
            continue
        union = ((labels == a) | (labels == b)).astype(np.uint8)
        if regionprops(union)[0].solidity >= solidity:
            pairs.append((a, b))
    return relabel(labels, pairs)


def held_out(description: str) -> tuple[argparse.Namespace, object, object, list]:
    """``DATA SPLIT [--subset dev] [--model DIR]`` parsed; the model, its config, and the held-out
    C images with their expert instances, as ``(image, truth)`` pairs."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data")
    parser.add_argument("split")
    parser.add_argument("--subset", default="dev")
    parser.add_argument("--model", default=None, help="model directory (default: the bundled model)")
    args = parser.parse_args()
    dataset = CellDataset.open(args.data)
    model, config = resolve_model(args.model, device="cpu")
    chosen = holdout_ids(args.split, dataset, args.subset, "C")
    images = [(dataset.load_image(i), dataset.load_reference_instances(i)) for i, _ in chosen]
    return args, model, config, images


def main() -> None:
    args, model, config, images = held_out(__doc__)
    cases = []
    for image, truth in images:
        result = segment_image(model, config, image, device="cpu", keep_probabilities=True)
        labels, prob = np.asarray(result.labels), np.asarray(result.probabilities)
        cases.append((truth, labels, border_stats(labels, prob)))

    def score(rule, *params) -> str:
        pooled = pool_metrics(
            [image_metrics(gt, rule(labels, stats, *params)) for gt, labels, stats in cases]
        )
        return f"AP@0.5 {pooled.ap[0]:.4f} DSB {pooled.dsb_score:.4f}"

    print(f"{len(cases)} {args.subset} C images; as segmented: {score(lambda labels, stats: labels)}")
    for kind, thresholds in (("interior", (0.2, 0.3, 0.4, 0.5, 0.6)), ("boundary", (0.1, 0.2, 0.3, 0.4))):
        for threshold in thresholds:
            for min_len in (3, 8):
                print(f"border P({kind}) {'>' if kind == 'interior' else '<'} {threshold}, "
                      f">= {min_len} px: {score(by_evidence, kind, threshold, min_len)}", flush=True)  # fmt: skip
    for solidity in (0.85, 0.9, 0.93):
        for ratio in (0.5, 0.8, 1.1):
            for area_factor in (2.0, 4.0):
                print(f"shape: solidity >= {solidity}, border >= {ratio} sqrt(area), union <= "
                      f"{area_factor} x median: {score(by_shape, solidity, ratio, area_factor)}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
