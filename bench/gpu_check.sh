#!/usr/bin/env bash
# The full-scale code path end to end on one GPU in <= 5 min: synthetic world at the real image sizes, random
# OpenAI-format ViT-B-16, all stages at batch 128 / 256x128 / bf16, an MSMT17-sized evaluation; ONE JSON line
# on stdout (step times, input images/s, peak memory, projected Protocol-1/2/3 hours). `--tiny`: the same on the
# CPU in about a minute (tests/test_gpu_check.py runs it). Details: bench/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" bench/gpu_check.py "$@"
