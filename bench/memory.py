#!/usr/bin/env python
"""Peak memory of one training step (train.py's step) at depth K and 2K, with and without gradient
checkpointing.

    python bench/memory.py                 # bench configuration (K=8 and 16, batch 16)
    python bench/memory.py --quick         # a tiny model (for the tests)

Each measurement runs in a fresh process: build the model and its step, run two warm-up steps, give
freed memory back to the system (malloc_trim), reset the kernel's high-water mark
(/proc/self/clear_refs), run one step and read the peak resident set size (VmHWM). The figures:
- `step_mb`: peak during the step minus the resident size just before it: the activations, their
  gradients and the optimiser's temporaries (what checkpointing trades for recomputation);
- `peak_rss_mb`: the process's peak during the step (TensorFlow, the graph, weights, optimiser
  state included).
On a GPU the same step is measured with `tf.config.experimental.get_memory_info` (peak bytes after
`reset_memory_stats`) and reported as `gpu_peak_mb`. Large tensors are allocated with mmap in the
measuring process (MALLOC_MMAP_THRESHOLD_), so that freed activations leave the resident set.
"""
import argparse
import ctypes
import json
import os
import subprocess
import sys

import common


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure(spec):
    """One measurement in this process (see the module docstring)."""
    import gc

    import numpy as np
    import tensorflow as tf

    glow, _, train_step, (x, y, lr) = common.our_train_step(spec["config"], spec["batch"], ckpt=spec["ckpt"])
    counter = tf.Variable(0, dtype=tf.int64)

    def step():
        out = train_step(x, y, lr, counter)
        counter.assign_add(1)
        return [t.numpy() for t in out]

    step(), step()
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident size
    stats, _, finite = step()
    peak = _status_kb("VmHWM")
    out = {"peak_rss_mb": peak / 1024, "rss_before_mb": before / 1024, "step_mb": (peak - before) / 1024,
           "finite": bool(finite), "params": sum(int(np.prod(v.shape)) for v in glow.trainable_variables)}
    if tf.config.list_physical_devices("GPU"):
        tf.config.experimental.reset_memory_stats("GPU:0")
        step()
        out["gpu_peak_mb"] = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2 ** 20
    return out


def start_one(spec):
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--measure", json.dumps(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=common.REPO)


def finish_one(proc):
    stdout, stderr = proc.communicate()
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = stderr.strip().splitlines()[-1:] or [""]
        return {"error": f"measurement exited with code {proc.returncode}: {tail[0][:300]}"}
    return json.loads(lines[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="bench", choices=["bench", "cifar10"], help="configuration (depth K = its depth)")
    p.add_argument("--batch", type=int, default=16, help="batch size")
    p.add_argument("--quick", action="store_true", help="a tiny model (for the tests)")
    p.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.measure is not None:
        sys.stdout = sys.__stdout__
        common.emit(measure(json.loads(args.measure)))
        return 0
    if args.batch < 1:
        p.error(f"--batch {args.batch}: expected a positive integer")
    name, batch = ("quick", 4) if args.quick else (args.config, args.batch)
    cfg = common.config_dict(name)
    common.emit({"bench": "memory", "machine": common.machine()})
    rows = []
    results = {}
    keys = [(depth, ckpt) for depth in (cfg["depth"], 2 * cfg["depth"]) for ckpt in (0, 1)]
    for i in range(0, len(keys), 2):  # two measurements at a time: each is its own process
        procs = {k: start_one({"config": {**cfg, "depth": k[0]}, "batch": batch, "ckpt": k[1]}) for k in keys[i:i + 2]}
        for (depth, ckpt), proc in procs.items():
            results[(depth, ckpt)] = {"bench": "memory", "config": name, "batch": batch, "depth": depth,
                                      "gradient_checkpointing": ckpt, **finish_one(proc)}
    for (depth, ckpt), r in results.items():
        base = results[(depth, 0)].get("step_mb")
        r["step_vs_no_checkpointing"] = r["step_mb"] / base if base and "step_mb" in r else None
        common.emit(r)
        rows.append([f"K={depth}", "on" if ckpt else "off", common.fmt(r.get("step_mb")), common.fmt(r.get("peak_rss_mb")),
                     common.fmt(r.get("step_vs_no_checkpointing"), 2), common.fmt(r.get("gpu_peak_mb")),
                     r.get("error", "")[:60]])
    common.print_table(f"Peak memory of one training step, {name} configuration, batch {batch}",
                       ["depth", "checkpointing", "step MB", "peak RSS MB", "step vs off", "GPU peak MB", ""], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
