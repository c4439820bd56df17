"""Speed of opening datasets and splitting them; the dsb2018-dev split tables.

Prints, for ``../shared/data/dsb2018-dev`` (skipped if absent):

* time to open and validate it (manifest + every header), median of runs;
* time of the pixel pass of a check (every image and label decoded);
* time to open a 20,000-image folder (symlinks to the dsb2018 files, so real
  headers are parsed), to show that opening reads no pixel;
* time of the near-duplicate search (C images, and all 660) and of a split
  with and without grouping;
* the split tables for target C with and without grouping, and how many
  near-duplicate pairs cross subsets in each (over several seeds without).

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_dataset.py [--runs 5]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from napari_cellseg.data.check import iter_check_pixels
from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.data.grouping import find_near_duplicates
from napari_cellseg.data.split import split_dataset
from napari_cellseg.generators import run_to_end

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def median_time(function, runs: int) -> tuple[float, object]:
    """Median wall time of ``runs`` calls, and the last result.

    Also records the median CPU time in ``CPU_TIMES`` (steadier than wall time
    on a machine shared with other jobs).
    """
    times, cpu, result = [], [], None
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = function()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    CPU_TIMES.append(statistics.median(cpu))
    return statistics.median(times), result


CPU_TIMES: list[float] = []


def cpu() -> str:
    return f"[CPU {CPU_TIMES[-1]:.3f} s]"


def symlinked_pool(source: CellDataset, n: int, folder: Path) -> Path:
    """A dataset of ``n`` ids whose files are symlinks to ``source``'s files."""
    for name in ("images", "masks"):
        (folder / name).mkdir(parents=True)
    rows = ["id,microscope"]
    records = source.records
    for k in range(n):
        record = records[k % len(records)]
        image_id = f"img{k:06d}"
        os.symlink(record.image_path, folder / "images" / f"{image_id}{record.image_path.suffix}")
        os.symlink(record.label_path, folder / "masks" / f"{image_id}{record.label_path.suffix}")
        rows.append(f"{image_id},{record.microscope}")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return folder


def colour_clustering_comparison(ds: CellDataset, target: list[str], pairs) -> None:
    """Why grouping uses seams: clusters of stain colour do not keep tiles together."""
    import numpy as np
    from scipy.cluster.hierarchy import fcluster, linkage

    features = []
    for image_id in target:
        pixels = ds.load_image(image_id).reshape(-1, 3).astype(np.float64)
        features.append(np.concatenate([pixels.mean(0), pixels.std(0)]))
    tree = linkage(np.array(features), "average")
    index = {image_id: k for k, image_id in enumerate(target)}
    print("\ncolour clustering (mean/std RGB, average linkage) of the C images:")
    for threshold in (5, 10, 20, 30):
        labels = fcluster(tree, threshold, "distance")
        split_pairs = sum(labels[index[p.first]] != labels[index[p.second]] for p in pairs)
        largest = np.bincount(labels).max()
        print(
            f"  threshold {threshold:>2}: {labels.max():>3} clusters, largest {largest:>2} images, "
            f"{split_pairs} of {len(pairs)} tile pairs in different clusters"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--big", type=int, default=20_000, help="images in the symlinked pool")
    args = parser.parse_args()
    root = SHARED / "dsb2018-dev"
    if not (root / "manifest.csv").is_file():
        print(f"skipped: no {root}")
        return

    seconds, ds = median_time(lambda: CellDataset.open(root), args.runs)
    print(
        f"open + validate dsb2018-dev ({len(ds)} images): {seconds * 1000:.0f} ms (median of {args.runs}) {cpu()}"
    )
    seconds, found = median_time(lambda: run_to_end(iter_check_pixels(ds)), max(1, args.runs // 2))
    print(
        f"check pixels of dsb2018-dev ({len(ds)} images + labels decoded): {seconds:.2f} s "
        f"({seconds / len(ds) * 1000:.1f} ms per image), {len(found.problems)} problems {cpu()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        big = symlinked_pool(ds, args.big, Path(tmp) / "big")
        seconds, pool = median_time(lambda: CellDataset.open(big), max(1, args.runs // 2))
        print(
            f"open + validate {len(pool)} images (symlinks): {seconds:.2f} s "
            f"({seconds / len(pool) * 1e6:.0f} us per image, 2 headers each) {cpu()}"
        )

    target = [r.id for r in ds if r.microscope == "C"]
    seconds, pairs = median_time(lambda: find_near_duplicates(ds, target), args.runs)
    print(f"near-duplicate search, {len(target)} C images: {seconds:.2f} s -> {len(pairs)} pairs {cpu()}")
    seconds, all_pairs = median_time(lambda: find_near_duplicates(ds), max(1, args.runs // 2))
    print(f"near-duplicate search, all {len(ds)} images: {seconds:.2f} s -> {len(all_pairs)} pairs {cpu()}")

    seconds, grouped = median_time(lambda: split_dataset(ds, "C"), args.runs)
    print(f"split with grouping: {seconds:.2f} s (median of {args.runs}) {cpu()}")
    seconds, plain = median_time(lambda: split_dataset(ds, "C", grouping=False), args.runs)
    print(f"split without grouping: {seconds * 1000:.1f} ms {cpu()}")

    groups = {grouped.groups[i] for i in target}
    print(f"\ntarget C, ratios 0.90/0.05/0.05, seed 0, WITH grouping ({len(groups)} groups of C images):")
    print(grouped.table())
    print(f"near-duplicate pairs across subsets: {len(grouped.crossing_pairs())} of {len(pairs)}")
    for note in grouped.notes:
        print(f"note: {note}")
    print("\nWITHOUT grouping (107 single images):")
    print(plain.table())
    print(f"near-duplicate pairs across subsets: {len(plain.crossing_pairs(pairs))} of {len(pairs)}")
    crossing = [len(split_dataset(ds, "C", grouping=False, seed=s).crossing_pairs(pairs)) for s in range(10)]
    print(
        f"over seeds 0-9 without grouping: median {statistics.median(crossing)}, range {min(crossing)}-{max(crossing)}"
    )
    colour_clustering_comparison(ds, target, pairs)


if __name__ == "__main__":
    main()
