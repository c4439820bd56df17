#!/bin/bash
# Step 17 (docs/experiments.md): step 15's one-command recipe from M2 on the CPU, with
# EfficientNet-Lite2 or the default Lite0 as M2. One torch thread; two runs side by side.
#   bash run_cpu.sh NAME M2 SEED      e.g.  bash run_cpu.sh lite2_s1 m2/m2-efficientnet-lite2 1
# DATA and SPLIT default to the shared data and a split_C.csv in the working directory.
set -u
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
DATA=${DATA:-../shared/data/dsb2018-dev}; SPLIT=${SPLIT:-split_C.csv}
name=$1; m2=$2; seed=$3
napari-cellseg train --data "$DATA" --split "$SPLIT" -l 4 --la 2 --frozen-layers 0 \
    --loss weighted-ce --class-weights 1 5 3 --thickness 2 --microscopes A B C --oversample C=26.045 \
    --batch-size 8 --patch-size 192 --lr 2e-3 --epochs 20 --steps-per-epoch 350 --threads 1 \
    --workers 0 --device cpu --dev-metric ap50 --dev-every 2 --quiet --augment stains \
    --m2 "$m2" --seed "$seed" --out "$name"
