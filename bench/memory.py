#!/usr/bin/env python
"""Memory and time of one training step (train.py's step) at depth K, 2K and 4K, for each way of
computing its gradients: --backprop store, checkpoint and reversible, taken apart into what the
parameters need and what the activations need.

    python bench/memory.py                 # bench configuration (K=8, 16 and 32, batch 16)
    python bench/memory.py --batch 128     # the same where the activations dominate
    python bench/memory.py --config celeba --batch 1 --depths 32 --modes reversible   # CelebA-HQ 256
    python bench/memory.py --quick         # a tiny model (for the tests)

Per depth, one worker process per mode (store, checkpoint, reversible), built one after the other;
each builds train.py's step on a fixed batch, runs two warm-up steps and measures (below); then the
parent times the modes interleaved (`--rounds` x `--steps`, the order rotating every round, one
worker computing at a time), so that their speeds are compared on the same machine load.

The memory figures come from TensorFlow's own allocator (`tf.config.experimental.get_memory_info`:
the bytes TensorFlow's allocator has handed out to tensors, `current`, and `peak` since
`reset_memory_stats`; on the CPU this script makes TensorFlow use its BFC allocator,
TF_CPU_ALLOCATOR_USE_BFC, whose statistics count every tensor): every tensor a step creates, and
nothing else (not the graph, not Python, not malloc's free lists). A pass's figure is its peak minus
the bytes in use just before it (weights, optimiser state and the input batch are already there), the
least over `--repeats` calls after one untimed call (tracing): the allocator may give a tensor a free
chunk up to twice its size, so a single call's peak varies with what earlier calls left free:
- `step_mb`: the whole training step (objective, gradients, the finite check, Adamax + Polyak);
- `act_mb`: the activations alone: the same forward and backward pass in the same mode, but
  differentiated with respect to the input image only (the dequantisation noise), so that no
  parameter gradient is computed or kept (TensorFlow prunes those ops): what `store` keeps,
  `checkpoint` keeps one input per flow step plus one step's activations, `reversible` one step's;
- `grads_mb`: one copy of the parameters (4 bytes each), the size of the gradients that every mode
  must hold at once at the end of the backward pass (the finite check and the update read them all);
- `opt_mb`: Adamax + Polyak's temporaries: the update alone, given the gradients (already held);
- `state_mb`: what lives between steps: weights, Adamax's m1 and m2, the Polyak averages (counted
  from the variables' sizes);
- `build_peak_rss_mb`: the process's peak resident size up to the end of the warm-up (model, data
  init, tracing the step, its first two runs): where a deep model's process peaks; `build_s` that time;
- `peak_rss_mb`: the process's peak resident size during the step (`VmHWM` after resetting it with
  /proc/self/clear_refs; TensorFlow, the graph and everything else included), `rss_before_mb` just
  before it; large tensors are mmap-ed (MALLOC_MMAP_THRESHOLD_), so freed activations leave it;
- `step_s`: the median of the interleaved timed steps; `speed_vs_checkpoint`: checkpoint's step_s /
  this step_s (same depth, same run); `act_vs_K` / `step_vs_K`: the figure / the same mode's at the
  smallest depth.
On a GPU the same allocator figures come from the GPU's allocator.
"""
import argparse
import ctypes
import gc
import json
import os
import sys
import time

# TensorFlow's default CPU allocator leaves small tensors out of its statistics (a step of the quick
# model reads as 0 bytes); its BFC allocator, which this switches the CPU device to, counts every
# tensor (rounded up to its 256-byte bins). Set before TensorFlow starts (workers inherit it).
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

import common  # noqa: E402

MODES = ("store", "checkpoint", "reversible")
MIB = 2 ** 20


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _nbytes(variables):
    return sum(int(v.shape.num_elements()) * v.dtype.size for v in variables)


def build(spec):
    """Worker side: build the step, warm up, measure the memory figures (module docstring); returns
    (step, 0, figures) for common.worker_main, which then times steps on request."""
    import numpy as np
    import tensorflow as tf

    device = "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"
    start = time.perf_counter()
    glow, optimizer, train_step, (x, y, lr) = common.our_train_step(spec["config"], spec["batch"],
                                                                    backprop=spec["backprop"])
    counter = tf.Variable(0, dtype=tf.int64)

    def step():
        out = train_step(x, y, lr, counter)
        counter.assign_add(1)
        return [t.numpy() for t in out]

    def transient_mb(run):
        return common.transient_bytes(run, device, spec.get("repeats", 3)) / MIB

    step(), step()
    params = glow.trainable_variables  # after the first steps: the model builds its variables lazily
    out = {"params": sum(int(np.prod(v.shape)) for v in params), "device": device,
           "build_peak_rss_mb": _status_kb("VmHWM") / 1024, "build_s": time.perf_counter() - start}
    # The process's resident size during one step (the kernel's high-water mark, reset before it).
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident size
    *_, finite = step()
    out.update(peak_rss_mb=_status_kb("VmHWM") / 1024, rss_before_mb=before / 1024, finite=bool(finite))
    out["step_mb"] = transient_mb(step)

    noise = tf.constant(np.random.RandomState(1).uniform(0, 1.0 / glow.config.n_bins, x.shape.as_list()), tf.float32)

    @tf.function
    def input_gradient(noise):  # the activations' share: d loss / d input, no parameter gradient
        with tf.GradientTape() as tape:
            tape.watch(noise)
            loss = tf.reduce_mean(glow.objective(x, y if glow.config.ycond else None, noise=noise)["loss"])
        return tf.reduce_sum(tape.gradient(loss, noise))

    out["act_mb"] = transient_mb(lambda: input_gradient(noise).numpy())

    grads = [tf.zeros_like(v) for v in params]  # gradient-sized inputs (their values do not matter)
    update = tf.function(lambda grads: optimizer.apply(grads, lr * 0.0))  # lr 0: the weights stay
    out["opt_mb"] = transient_mb(lambda: update(grads))
    out["grads_mb"] = _nbytes(params) / MIB
    out["state_mb"] = (_nbytes(params) + _nbytes([*optimizer.m1, *optimizer.m2, *optimizer.ema])) / MIB
    del grads
    return step, 0, out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="bench", choices=["bench", "cifar10", "celeba"],
                   help="configuration (depth K = its depth)")
    p.add_argument("--batch", type=int, default=16, help="batch size")
    p.add_argument("--depths", default=None, help="comma-separated depths (default: K, 2K, 4K)")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated backprop modes")
    p.add_argument("--rounds", type=int, default=3, help="timing rounds (the modes interleaved)")
    p.add_argument("--steps", type=int, default=2, help="timed steps per mode per round")
    p.add_argument("--repeats", type=int, default=3, help="calls of each pass whose least peak is its memory figure")
    p.add_argument("--quick", action="store_true", help="a tiny model (for the tests)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:
        return common.worker_main(args.worker, build)
    for name in ("batch", "rounds", "steps", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name} {getattr(args, name)}: expected a positive integer")
    modes = args.modes.split(",")
    if not modes or set(modes) - set(MODES) or len(set(modes)) != len(modes):
        p.error(f"--modes {args.modes!r}: expected a comma-separated subset of {','.join(MODES)}")
    name, batch = ("quick", 4) if args.quick else (args.config, args.batch)
    cfg = common.config_dict(name)
    try:
        depths = [int(d) for d in args.depths.split(",")] if args.depths else [cfg["depth"] * m for m in (1, 2, 4)]
    except ValueError:
        depths = []
    if not depths or min(depths) < 1:
        p.error(f"--depths {args.depths!r}: expected comma-separated positive integers")
    rounds, steps = (1, 1) if args.quick else (args.rounds, args.steps)
    common.emit({"bench": "memory", "machine": common.machine()})
    results = {}
    for depth in depths:
        workers = []
        try:
            for mode in modes:  # built one at a time: their builds do not compete
                spec = {"config": {**cfg, "depth": depth}, "batch": batch, "backprop": mode, "repeats": args.repeats}
                # --quick: every mode in this process (one TensorFlow start; the allocator's figures
                # are per pass, so they hold; the resident sizes and times then compare nothing)
                w = (common.InProcessWorker(mode, build, spec) if args.quick else
                     common.Worker(mode, "memory.py", spec, env={"MALLOC_MMAP_THRESHOLD_": "131072"}))
                w.wait_ready()
                workers.append(w)
                print(json.dumps({"partial": "built", "depth": depth, "backprop": mode, "error": w.error, **w.info}),
                      file=sys.stderr, flush=True)  # the memory figures, before the timing
            times = common.interleave([w for w in workers if w.error is None], rounds, steps)
        finally:
            common.close_all(workers)
        for w in workers:
            r = {"bench": "memory", "config": name, "batch": batch, "depth": depth, "backprop": w.name}
            if w.error is not None:
                r["error"] = w.error
            else:
                r.update({k: v for k, v in w.info.items() if k != "ready"})
                r["step_s"] = common.median(times[w.name])
            results[(depth, w.name)] = r
            print(json.dumps({"partial": True, **r}), file=sys.stderr, flush=True)
    rows = []
    for (depth, mode), r in results.items():
        first, ckpt = results.get((depths[0], mode), {}), results.get((depth, "checkpoint"), {})
        for key in ("act", "step"):
            r[f"{key}_vs_K"] = (r[f"{key}_mb"] / first[f"{key}_mb"] if first.get(f"{key}_mb") and f"{key}_mb" in r
                                else None)
        r["speed_vs_checkpoint"] = ckpt["step_s"] / r["step_s"] if ckpt.get("step_s") and r.get("step_s") else None
        common.emit(r)
        f = lambda k, d=1: common.fmt(r.get(k), d)  # noqa: E731
        rows.append([f"K={depth}", mode, common.fmt(r.get("params")), f("state_mb"), f("grads_mb"), f("opt_mb"),
                     f("act_mb"), f("act_vs_K", 2), f("step_mb"), f("step_vs_K", 2), f("build_s", 0),
                     f("build_peak_rss_mb", 0), f("rss_before_mb", 0),
                     f("peak_rss_mb", 0), f("step_s", 3), f("speed_vs_checkpoint", 2), r.get("error", "")[:60]])
    common.print_table(f"Memory (MB, TensorFlow's allocator unless RSS) and time of one training step, {name} "
                       f"configuration, batch {batch}",
                       ["depth", "backprop", "params", "state", "grads", "Adamax temp", "activations",
                        f"act vs K={depths[0]}", "step", f"step vs K={depths[0]}", "build s", "build peak RSS",
                        "RSS before", "peak RSS",
                        "step s", "speed vs checkpoint", ""], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
