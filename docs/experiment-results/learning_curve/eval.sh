#!/bin/bash
# eval.sh K: tune lc_kK's watershed on dev C (3 rounds), then its dev C scores
set -u
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
D=${DATA:-../shared/data/dsb2018-dev}; S=${SPLIT:-split_C.csv}; k=$1
napari-cellseg tune-watershed --model "lc_k$k" --data "$D" --split "$S" --subset dev --microscope C \
    --device cpu --rounds 3 > "tune_k$k.txt" 2>&1
python "$(dirname "$0")/lc_scores.py" "$D" "$S" "lc_k$k" > "dev_k$k.txt" 2>&1
