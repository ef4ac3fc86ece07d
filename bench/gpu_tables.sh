#!/usr/bin/env bash
# GPU check for Tables VI-VII at full size (random weights; a script, not a test): per paper backbone, train_bench's
# step times, peak memory, text tower to end-of-text vs whole context, and the Protocol-1 training projection.
set -euo pipefail
for b in RN50 RN101 ViT-B-32 ViT-B-16; do
  python bench/train_bench.py --device cuda --backbone "$b" --size 224 224 --batch 128 --n-ids 1467 --repeats 5
done
