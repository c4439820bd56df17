"""AP@0.5 of several `bench_robustness.py` outputs side by side, one row per case.

python compare_benches.py NAME=BENCH.txt NAME=BENCH.txt ...
(cells with several figures: own scale / diameter estimated / one measured diameter, or
as it is / --haematoxylin-only)
"""

import re
import sys

rows: dict[str, dict[str, str]] = {}
names = [arg.split("=", 1)[0] for arg in sys.argv[1:]]
for arg in sys.argv[1:]:
    name, path = arg.split("=", 1)
    for line in open(path):
        if not line.startswith("| ") or line.startswith("| ---") or "model default" in line:
            continue
        if "nucleus diameter" in line:  # the scale table's header
            continue
        case = line.strip().strip("|").split("|")[0].strip()
        rows.setdefault(case, {})[name] = " / ".join(re.findall(r"AP@0.5 ([0-9.]+)", line))
print("| case | " + " | ".join(names) + " |")
print("|---" * (len(names) + 1) + "|")
for case, cells in rows.items():
    print(f"| {case} | " + " | ".join(cells.get(n, "") for n in names) + " |")
