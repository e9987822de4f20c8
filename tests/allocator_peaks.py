"""Memory measured in a process of its own: TensorFlow picks its CPU allocator at its first allocation,
and only the BFC allocator (switched on by TF_CPU_ALLOCATOR_USE_BFC) counts every tensor in
get_memory_info. The scripts measure with bench/common.py's `transient_bytes`, as the benchmarks do."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure_in_bfc_process(script, *args, timeout=900):
    """The JSON object that Python source `script` prints last, run with `args` under the BFC allocator
    with the repository and bench/ importable."""
    env = {**os.environ, "TF_CPU_ALLOCATOR_USE_BFC": "true", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join([REPO, os.path.join(REPO, "bench")])}
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
