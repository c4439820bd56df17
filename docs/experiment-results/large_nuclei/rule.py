"""Step 27's rule applied to the probe's passes: per magnification, how far the first pass's
diameter is from the truth with the own scale alone and with the surest of the three passes
(a shrunk pass needs 5 nuclei). Before the refinement passes, which both then run.

python rule.py probe_*.jsonl
"""

import json
import sys
from collections import defaultdict

import numpy as np

errors = defaultdict(lambda: {"own": [], "surest": [], "n": 0, "switched": 0})
for path in sys.argv[1:]:
    for line in open(path):
        record = json.loads(line)
        true, passes = record["true"], record["trials"]
        if not true:
            continue
        own = passes["1.0"]["d"]
        best = None  # as inference.segment: in pass order, a later pass only if strictly surer
        for f in ("1.0", "0.5", "0.25"):
            p = passes[f]
            if p["d"] is not None and (f == "1.0" or p["n"] >= 5):
                if best is None or (p["int_sat"] or 0.0) > best[0]:
                    best = (p["int_sat"] or 0.0, p["d"], f)
        row = errors[record["scale"]]
        row["n"] += 1
        row["own"].append(abs(np.log(own / true)) if own else np.inf)
        row["surest"].append(abs(np.log(best[1] / true)) if best else np.inf)
        row["switched"] += best is not None and best[2] != "1.0"

print("| magnification | images | first pass off by > 1.5x: own scale | surest pass | shrunk pass chosen |")
print("|---|---|---|---|---|")
for scale in sorted(errors):
    row = errors[scale]
    own, surest = np.array(row["own"]), np.array(row["surest"])
    far = np.log(1.5)
    print(f"| {scale:g} | {row['n']} | {np.sum(own > far)} | {np.sum(surest > far)} | {row['switched']} |")
