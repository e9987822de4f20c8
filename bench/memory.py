#!/usr/bin/env python
"""Peak memory and time of one training step (train.py's step) at depth K, 2K and 4K, for each way of
computing its gradients: --backprop store, checkpoint and reversible.

    python bench/memory.py                 # bench configuration (K=8, 16 and 32, batch 16)
    python bench/memory.py --config celeba --batch 1 --depths 32   # the CelebA-HQ 256 model
    python bench/memory.py --quick         # a tiny model (for the tests)

Each measurement runs in a fresh process, one at a time by default (`--parallel N` runs N at once,
which makes the timings compete with each other):
build the model and its step, run two warm-up steps, give freed memory back to the system
(malloc_trim), reset the kernel's high-water mark (/proc/self/clear_refs), run one step and read the
peak resident set size (VmHWM); then time `--steps` more steps. The figures:
- `step_mb`: peak during the step minus the resident size just before it: the activations, their
  gradients and the optimiser's temporaries (what checkpointing and reversible backprop trade for
  recomputation);
- `peak_rss_mb`: the process's peak during the step (TensorFlow, the graph, weights, optimiser
  state included);
- `step_s`: the median time of the timed steps; `speed_vs_checkpoint`: checkpoint's step_s at the same
  depth / this step_s; `step_vs_K`: step_mb / the same mode's step_mb at the smallest depth.
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

    import time

    glow, _, train_step, (x, y, lr) = common.our_train_step(spec["config"], spec["batch"], backprop=spec["backprop"])
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
    times = []
    for _ in range(spec["steps"]):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    out["step_s"] = common.median(times)
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


MODES = ("store", "checkpoint", "reversible")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="bench", choices=["bench", "cifar10", "celeba"],
                   help="configuration (depth K = its depth)")
    p.add_argument("--batch", type=int, default=16, help="batch size")
    p.add_argument("--depths", default=None, help="comma-separated depths (default: K, 2K, 4K)")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated backprop modes")
    p.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    p.add_argument("--parallel", type=int, default=None,
                   help="measurements run at a time (default 1, for comparable timings; 3 with --quick)")
    p.add_argument("--quick", action="store_true", help="a tiny model (for the tests)")
    p.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.measure is not None:
        sys.stdout = sys.__stdout__
        common.emit(measure(json.loads(args.measure)))
        return 0
    if args.batch < 1:
        p.error(f"--batch {args.batch}: expected a positive integer")
    args.parallel = (3 if args.quick else 1) if args.parallel is None else args.parallel
    if args.parallel < 1:
        p.error(f"--parallel {args.parallel}: expected a positive integer")
    if args.steps < 1:
        p.error(f"--steps {args.steps}: expected a positive integer")
    modes = args.modes.split(",")
    if not modes or set(modes) - set(MODES):
        p.error(f"--modes {args.modes!r}: expected a comma-separated subset of {','.join(MODES)}")
    name, batch = ("quick", 4) if args.quick else (args.config, args.batch)
    cfg = common.config_dict(name)
    try:
        depths = [int(d) for d in args.depths.split(",")] if args.depths else [cfg["depth"] * m for m in (1, 2, 4)]
    except ValueError:
        depths = []
    if not depths or min(depths) < 1:
        p.error(f"--depths {args.depths!r}: expected comma-separated positive integers")
    common.emit({"bench": "memory", "machine": common.machine()})
    results = {}
    keys = [(depth, mode) for depth in depths for mode in modes]
    for i in range(0, len(keys), args.parallel):  # --parallel 1: the timings compare like with like
        procs = {(depth, mode): start_one({"config": {**cfg, "depth": depth}, "batch": batch, "backprop": mode,
                                           "steps": args.steps}) for depth, mode in keys[i:i + args.parallel]}
        for (depth, mode), proc in procs.items():
            results[(depth, mode)] = {"bench": "memory", "config": name, "batch": batch, "depth": depth,
                                      "backprop": mode, "parallel": args.parallel, **finish_one(proc)}
            print(json.dumps({"partial": True, **results[(depth, mode)]}), file=sys.stderr, flush=True)
    rows = []
    for (depth, mode), r in results.items():
        first, ckpt = results.get((depths[0], mode), {}), results.get((depth, "checkpoint"), {})
        r["step_vs_K"] = r["step_mb"] / first["step_mb"] if first.get("step_mb") and "step_mb" in r else None
        r["speed_vs_checkpoint"] = ckpt["step_s"] / r["step_s"] if ckpt.get("step_s") and "step_s" in r else None
        common.emit(r)
        rows.append([f"K={depth}", mode, common.fmt(r.get("step_mb")), common.fmt(r.get("step_vs_K"), 2),
                     common.fmt(r.get("peak_rss_mb")), common.fmt(r.get("step_s"), 3),
                     common.fmt(r.get("speed_vs_checkpoint"), 2), common.fmt(r.get("gpu_peak_mb")),
                     r.get("error", "")[:60]])
    common.print_table(f"Memory and time of one training step, {name} configuration, batch {batch}",
                       ["depth", "backprop", "step MB", f"step vs K={depths[0]}", "peak RSS MB", "step s",
                        "speed vs checkpoint", "GPU peak MB", ""], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
