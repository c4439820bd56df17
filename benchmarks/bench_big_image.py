"""Peak memory and time of segmenting a big image block by block (zarr output).

Each measurement runs in a fresh subprocess and reports its peak resident
memory (``VmHWM`` from /proc/self/status; tracemalloc does not see torch):

- ``pipeline``: ``segment_big`` on a SIZE x SIZE RGB mosaic of the microscope C
  samples, with the bundled default model, labels written to a zarr array;
- ``watershed``: the block-wise watershed alone on realistic probabilities
  (made from the samples' expert masks, tiled into a SIZE x SIZE zarr array),
  so the stitching handles ~100 000 real-sized nuclei.

Usage::

    OMP_NUM_THREADS=2 python benchmarks/bench_big_image.py [--size 10000] [--what pipeline watershed] [--optimize]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

KEYS = ("c_histology_1", "c_histology_2")


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tiled(pieces: list[np.ndarray], size: int, axis0: int = 0) -> np.ndarray:
    """A size x size mosaic of 256 x 320 pieces (alternating), along the last two axes."""
    ph, pw = pieces[0].shape[axis0], pieces[0].shape[axis0 + 1]
    rows = []
    for i in range(-(-size // ph)):
        row = [pieces[(i + j) % len(pieces)] for j in range(-(-size // pw))]
        rows.append(np.concatenate(row, axis=axis0 + 1))
    out = np.concatenate(rows, axis=axis0)
    index = [slice(None)] * out.ndim
    index[axis0], index[axis0 + 1] = slice(0, size), slice(0, size)
    return np.ascontiguousarray(out[tuple(index)])


def run_pipeline(size: int, workdir: Path, tile: int, block: int, optimize: bool) -> dict:
    import torch

    from napari_cellseg.inference.big import segment_big
    from napari_cellseg.inference.runtime import resolve_model
    from napari_cellseg.sample_data import load_sample

    model, config = resolve_model(None, device="cpu")  # the bundled default model
    image = tiled([load_sample(k)[0][:256, :320] for k in KEYS], size)
    start = time.perf_counter()
    last = [start]

    def progress(report) -> None:
        now = time.perf_counter()
        if now - last[0] > 30 or report.done == report.total:
            print(f"  {report.stage} {report.done}/{report.total} at {now - start:.0f} s", file=sys.stderr, flush=True)  # fmt: skip
            last[0] = now

    result = segment_big(
        model, config, image, workdir / "labels.zarr", block_size=block, tile_size=tile,
        optimize=optimize, callback=progress,
    )  # fmt: skip
    return {
        "seconds": time.perf_counter() - start,
        "n_instances": result.n_instances,
        "threads": torch.get_num_threads(),
    }


def run_watershed(size: int, workdir: Path, block: int) -> dict:
    import zarr

    from napari_cellseg.inference.big import instances_big
    from napari_cellseg.inference.synthetic import probabilities_from_instances
    from napari_cellseg.sample_data import load_sample

    pieces = [probabilities_from_instances(load_sample(k)[1][:256, :320], seed=0) for k in KEYS]
    chunk = 1024
    probabilities = zarr.open_array(str(workdir / "p.zarr"), mode="w", shape=(3, size, size), chunks=(3, chunk, chunk), dtype="float16")  # fmt: skip
    mosaic = tiled(pieces, chunk + 320 * 2, axis0=1)
    for y in range(0, size, chunk):
        for x in range(0, size, chunk):
            # The piece pattern alternates every 256 rows / 320 columns: read it at the right phase.
            oy, ox = y % 512, x % 640
            h, w = min(chunk, size - y), min(chunk, size - x)
            probabilities[:, y : y + h, x : x + w] = mosaic[:, oy : oy + h, ox : ox + w].astype(np.float16)
    start = time.perf_counter()
    result = instances_big(probabilities, workdir / "labels.zarr", block_size=block)
    return {
        "seconds": time.perf_counter() - start,
        "n_instances": result.n_instances,
        "truncated": result.truncated,
    }


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-big-", dir=args.workdir) as tmp:
        if args.child == "pipeline":
            figures = run_pipeline(args.size, Path(tmp), args.tile, args.block, args.optimize)
        else:
            figures = run_watershed(args.size, Path(tmp), args.block)
    figures["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument(
        "--what", nargs="+", default=["watershed", "pipeline"], choices=("pipeline", "watershed")
    )
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--block", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--optimize", action="store_true", help="compiled network (CPU)")
    parser.add_argument("--workdir", default=None, help="where the zarr outputs go (default: system temp)")
    parser.add_argument("--child", choices=("pipeline", "watershed"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    mp = args.size**2 / 1e6
    for what in args.what:
        command = [
            sys.executable, __file__, "--child", what, "--size", str(args.size), "--tile", str(args.tile),
            "--block", str(args.block), "--threads", str(args.threads),
        ]  # fmt: skip
        if args.optimize:
            command.append("--optimize")
        if args.workdir:
            command += ["--workdir", args.workdir]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        figures = json.loads(output.strip().splitlines()[-1])
        truncated = f", {figures['truncated']} truncated" if "truncated" in figures else ""
        print(
            f"{what:9s} {args.size}x{args.size}: {figures['seconds']:7.1f} s "
            f"({mp / figures['seconds']:.2f} MP/s), peak memory {figures['peak_rss_mb'] / 1024:.2f} GB, "
            f"{figures['n_instances']} instances{truncated}"
        )


if __name__ == "__main__":
    main()
