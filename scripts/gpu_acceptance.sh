#!/usr/bin/env bash
# One-shot acceptance run of a GPU machine or container: prints one JSON object on stdout (progress on
# stderr), writes it to --output too, and exits 0 when no part failed. On a machine without a GPU the GPU
# parts say "skipped". Parts, time limits and options: scripts/gpu_acceptance.py's docstring.
#   bash scripts/gpu_acceptance.sh                                  # about 10 minutes on one modern GPU
#   bash scripts/gpu_acceptance.sh --output /logs/gpu_acceptance.json
#   bash scripts/gpu_acceptance.sh --quick                          # the CPU parts shrunk (what CI runs)
# Uses the repository's .venv when there is one (a workstation), else the python on PATH (the image).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-}"
if [ -z "$python" ]; then
    if [ -x "$repo/.venv/bin/python" ]; then python="$repo/.venv/bin/python"; else python=python; fi
fi
exec "$python" "$repo/scripts/gpu_acceptance.py" "$@"
