"""Dev and test scores of every finished run under sweep folders, one line per run.

    .venv/bin/python scripts/score_runs.py --data ../shared/data/dsb2018-dev --split split_C.csv \
        experiments/ablations experiments/seeds experiments/seeds_ablations

Dev AP@0.5 is the run's own (best epoch); the test scores (AP@0.5, DSB score,
share of touching pairs merged, AP@0.5 per split group) come from
``napari_cellseg.training.holdout.score_model`` with each model's watershed
settings, cached next to the model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", nargs="+", type=Path, help="sweep output folders (holding runs/)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--microscope", default="C")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    from napari_cellseg.training.holdout import score_model

    print(
        "folder | run | seed | dev AP@0.5 | test AP@0.5 | test DSB | touching pairs merged | group AP@0.5 mean [min, max]"
    )
    for folder in args.folders:
        runs = sorted(p for p in (folder / "runs").iterdir() if (p / "run.json").is_file())
        for run in runs:
            record = json.loads((run / "run.json").read_text())
            if record["status"] != "done":
                continue
            s = score_model(run, args.data, args.split, microscope=args.microscope, device=args.device)
            mean, low, high = s.group_stats()
            print(
                f"{folder.name} | {run.name} | {record['train_config'].get('seed')} | {record['dev_score']:.3f} | "
                f"{s.ap50:.3f} | {s.dsb_score:.3f} | {s.merged_touching:.3f} | {mean:.3f} [{low:.3f}, {high:.3f}]",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
