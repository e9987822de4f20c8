#!/usr/bin/env python
"""Where train.py's step spends its time, and what the changes proposed in bench/proposals.py buy.

    python bench/profile_step.py           # bench configuration
    python bench/profile_step.py --quick   # a tiny model (for the tests)

Six parts, each printed as JSON lines and a table:
1. `ops`: a tf.profiler trace of a few steps, summarised by op type (kernel time summed over
   TensorFlow's compute threads, so shares are of total kernel time, not of wall time).
2. `parts`: the step taken apart, timed interleaved in this process: the objective alone, objective
   + gradients, the optimiser update alone (as tf.function and compiled with XLA), the whole step.
3. `layers`: forward + both gradients of each convolution of a flow step at each level, as the
   model computes it and in the proposed forms (1x1 as matmul, edge bias as a separate term).
4. `proposals`: for each proposal, (a) its numbers: the original release's reference vectors
   (tests/fixtures/original_glow) to 1e-4, and the loss and gradients against the current code on
   equal weights and noise (largest difference relative to each gradient's scale), and one optimiser
   update from equal gradients (largest difference of any weight or Polyak average), and (b) its speed: our step with and without it,
   each in its own worker process, interleaved (`--proposals NAME...` times only those).
5. `flops`: the step's convolution and matmul FLOPs (forward + backward, from the traced graph's static
   shapes), with the forms chosen here and with every convolution in the original's form, each step's
   median time, and the achieved FLOP/s against a large float32 MatMul timed in the same run (the
   attainable rate, the bound to read) and the CPU's peak at its nominal clock (`theoretical_peak`
   states its assumption; a core that runs above its nominal clock, as this 2-core AMD EPYC's do,
   exceeds it: the MatMul then attains more than this "peak").
6. `sample_flops` (only when asked): the same for sampling, train.py's `make_sampler` on
   `--sample_config` (default the CelebA-HQ configuration at batch 1): FLOPs per call, median time.
The `parts` part also times the non-finite check + global norm of the step, before and now.
"""
import argparse
import collections
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import common

FIXTURES = os.path.join(common.REPO, "tests", "fixtures", "original_glow")
CANDIDATES = [  # (name, proposals, jit, lu)
    ("current", [], 0, False),
    ("matmul_1x1", ["matmul_1x1"], 0, False),
    ("edge_split", ["edge_split"], 0, False),
    ("jit_optimizer", ["jit_optimizer"], 0, False),
    ("no_update", ["no_update"], 0, False),  # a bound: the step with a free update
    ("conv_1x1", ["conv_1x1"], 0, False),  # reversals: what d55b40a's changes buy
    ("strided_halves", ["strided_halves"], 0, False),
    ("conv_1x1+strided_halves", ["conv_1x1", "strided_halves"], 0, False),
    ("per_variable_update", ["per_variable_update"], 0, False),  # reversal: what the flat state buys
]  # whole-step XLA (jit=1, which needs qr_logdet with the plain 1x1 conv) is timed by train_speed.py


def build_step(config_name, batch, jit=False, ckpt=False, seed=0):
    """(glow, optimizer, compiled train step, its arguments) for a configuration."""
    import tensorflow as tf

    glow, optimizer, step, args = common.our_train_step(common.config_dict(config_name), batch, jit, ckpt, seed)
    return glow, optimizer, step, (*args, tf.constant(0, tf.int64))


# --- 1. op-level trace --------------------------------------------------------------------------
def op_summary(step, args, n_steps):
    """{op type: ms per step} of kernel time on TensorFlow's compute threads, from a profiler trace."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    logdir = tempfile.mkdtemp(prefix="glow_profile_")
    tf.profiler.experimental.start(logdir)
    t0 = time.perf_counter()
    for _ in range(n_steps):
        step(*args)[0].numpy()
    wall = (time.perf_counter() - t0) / n_steps
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    with open(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0], "rb") as f:
        space.ParseFromString(f.read())
    per_type, count = collections.Counter(), collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or "::" in name:  # "node:OpType"; skip executor bookkeeping
                    continue
                op_type = name.rsplit(":", 1)[1]
                per_type[op_type] += event.duration_ps / 1e9 / n_steps
                count[op_type] += 1 / n_steps
    return wall * 1e3, per_type, count


# --- 2. the step's parts --------------------------------------------------------------------------
def parts(config_name, batch, rounds, reps):
    import tensorflow as tf

    glow, optimizer, step, args = build_step(config_name, batch)
    params = glow.trainable_variables
    x, y, lr, counter = args

    @tf.function
    def objective():
        return tf.reduce_mean(glow.objective(x, seed=[0, 1])["loss"])

    @tf.function
    def gradients():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(glow.objective(x, seed=[0, 1])["loss"])
        return tape.gradient(loss, params)

    grads = [tf.identity(g) for g in gradients()]
    update = tf.function(lambda: optimizer.apply(grads, lr))
    from glow_tf.training.steps import all_finite
    finite_each = tf.function(lambda: tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads]))
    finite_norm = tf.function(lambda: [all_finite(grads, tf.linalg.global_norm(grads)), tf.linalg.global_norm(grads)])
    finite_norm_before = tf.function(lambda: [finite_each(), tf.linalg.global_norm(grads)])
    update_jit = tf.function(lambda: optimizer._update(grads, lr), jit_compile=True)
    fns = {"objective (forward)": objective, "objective + gradients": gradients,
           "optimizer update (tf.function)": update, "optimizer update (XLA)": update_jit,
           "whole step (make_train_step)": lambda: step(*args),
           "finite check + global norm, before (each gradient checked)": finite_norm_before,
           "finite check + global norm, now (from the norm)": finite_norm}
    return time_in_process(fns, rounds, reps)


def time_in_process(fns, rounds, reps):
    """{name: median ms} of callables timed in rotating order (each synchronised by .numpy())."""
    import tensorflow as tf

    def run(fn):
        out = fn()
        for t in tf.nest.flatten(out):
            if hasattr(t, "numpy"):
                t.numpy()

    for fn in fns.values():
        run(fn), run(fn)
    times = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            for _ in range(reps):
                run(fns[k])
            times[k].append((time.perf_counter() - t0) / reps * 1e3)
    return {k: common.median(v) for k, v in times.items()}


# --- 3. the convolutions of one flow step ---------------------------------------------------------
def layer_times(config_name, batch, rounds, reps):
    import numpy as np
    import tensorflow as tf

    import glow_tf.bijectors.networks as layers

    cfg = common.config_dict(config_name)
    rng = np.random.RandomState(0)

    def edge(x, w):
        return tf.nn.conv2d(layers.add_edge_padding(x, 3), w, 1, "VALID")

    def split(x, w):
        c = x.shape[-1]
        border = tf.constant(layers._border_indicator(x.shape[1], x.shape[2], 1, 1))
        return (tf.nn.conv2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), w[:, :, :c], 1, "VALID")
                + tf.nn.conv2d(border, w[:, :, c:], 1, "VALID"))

    def conv1(x, w):
        return tf.nn.conv2d(x, w, 1, "VALID")

    def matmul1(x, w):
        y = tf.matmul(tf.reshape(x, [-1, w.shape[2]]), tf.reshape(w, w.shape[2:]))
        return tf.reshape(y, [*x.shape[:3], w.shape[3]])

    def make(fn, x_shape, w_shape):
        x = tf.constant(rng.standard_normal(x_shape).astype("float32"))
        w = tf.Variable(rng.standard_normal(w_shape).astype("float32") * 0.05)
        dy = tf.constant(rng.standard_normal([*x_shape[:3], w_shape[3]]).astype("float32"))

        @tf.function
        def f():
            with tf.GradientTape() as tape:
                tape.watch(x)
                out = tf.reduce_sum(fn(x, w) * dy)
            return tape.gradient(out, [x, w])
        return f

    fns, width = {}, cfg["width"]
    n_out = 2 if cfg["flow_coupling"] == "affine" else 1
    for h, _, c in common_level_shapes(cfg):
        half = c // 2
        fns[f"{h}x{h} l_1 3x3 {half}+1->{width} as now"] = make(edge, [batch, h, h, half], [3, 3, half + 1, width])
        fns[f"{h}x{h} l_1 3x3 {half}+1->{width} edge_split"] = make(split, [batch, h, h, half], [3, 3, half + 1, width])
        fns[f"{h}x{h} l_2 1x1 {width}->{width} as now"] = make(conv1, [batch, h, h, width], [1, 1, width, width])
        fns[f"{h}x{h} l_2 1x1 {width}->{width} matmul"] = make(matmul1, [batch, h, h, width], [1, 1, width, width])
        fns[f"{h}x{h} l_last 3x3 {width}+1->{n_out * half} as the original"] = make(edge, [batch, h, h, width],
                                                                                   [3, 3, width + 1, n_out * half])
        uses = "glow_tf's choice" if layers.chosen_form(
            tf.TensorSpec([batch, h, h, width]), tf.TensorSpec([3, 3, width + 1, n_out * half])) == "taps" else "unused"
        fns[f"{h}x{h} l_last 3x3 {width}+1->{n_out * half} tap form ({uses})"] = make(
            layers.tap_conv2d, [batch, h, h, width], [3, 3, width + 1, n_out * half])
        fns[f"{h}x{h} l_last 3x3 {width}+1->{n_out * half} edge_split"] = make(split, [batch, h, h, width],
                                                                               [3, 3, width + 1, n_out * half])
        fns[f"{h}x{h} invconv 1x1 {c}->{c} as now"] = make(conv1, [batch, h, h, c], [1, 1, c, c])
        fns[f"{h}x{h} invconv 1x1 {c}->{c} matmul"] = make(matmul1, [batch, h, h, c], [1, 1, c, c])
    return time_in_process(fns, rounds, reps)


def common_level_shapes(cfg):
    from glow_tf import GlowConfig
    return GlowConfig(**cfg).level_shapes


# --- 5. FLOP/s against the machine's peak ---------------------------------------------------------
CONV_OPS = ("Conv2D", "_FusedConv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "DepthwiseConv2dNative")


def _graph_ops(graph):
    """Every op of a FuncGraph and of the functions it calls (cond branches, custom gradients)."""
    ops = list(graph.get_operations())
    for fn in getattr(graph, "_functions", {}).values():
        inner = getattr(fn, "graph", None)
        if inner is not None:
            ops += _graph_ops(inner)
    return ops


def matmul_flops(ops):
    """{op type: FLOPs} of the convolutions and matrix products among `ops` (2 per multiply-add),
    from their static shapes; a convolution's two gradients cost what its forward pass does."""
    out = collections.Counter()
    for op in ops:
        t = op.type
        if t in ("MatMul", "BatchMatMulV2", "BatchMatMul"):
            a, b = op.inputs[0].shape, op.inputs[1].shape
            k = a[-2] if op.get_attr("transpose_a" if t == "MatMul" else "adj_x") else a[-1]
            out[t] += 2.0 * op.outputs[0].shape.num_elements() * k
            del b
        elif t in CONV_OPS:
            if t == "Conv2DBackpropInput":
                dy, w = op.inputs[2].shape, op.inputs[1].shape
            elif t == "Conv2DBackpropFilter":
                dy, w = op.inputs[2].shape, op.outputs[0].shape
            else:
                dy, w = op.outputs[0].shape, op.inputs[1].shape
            out[t] += 2.0 * dy.num_elements() * w[0] * w[1] * w[2]
    return out


def peak_matmul(n=2048, reps=10):
    """Attainable float32 FLOP/s: the median of `reps` [n, n] @ [n, n] products (TensorFlow's MatMul)."""
    import tensorflow as tf

    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])
    f = tf.function(lambda a, b: tf.matmul(a, b))
    f(a, b).numpy()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f(a, b).numpy()
        times.append(time.perf_counter() - t0)
    return 2.0 * n ** 3 / common.median(times)


def theoretical_peak():
    """(FLOP/s, the assumption in words): cores x GHz x float32 FLOP per cycle per core. The clock is
    /proc/cpuinfo's 'cpu MHz' (a VM's nominal clock: cores that boost above it beat this figure, so it
    is no bound where the attainable MatMul exceeds it); FLOP per cycle 32 for an AMD Zen 4
    (family 25: two 256-bit FMA pipes, AVX-512 run as two halves), 64 for a CPU with AVX-512 and two
    512-bit FMA units (Intel server cores), 32 with AVX2 + FMA."""
    flags, mhz, family, vendor = set(), None, None, ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "flags":
                flags = set(value.split())
            elif key == "cpu MHz" and mhz is None:
                mhz = float(value)
            elif key == "cpu family" and family is None:
                family = int(value)
            elif key == "vendor_id":
                vendor = value
    cores = os.cpu_count()
    if vendor == "AuthenticAMD" and family == 25:
        per_cycle, why = 32, "AMD Zen 4: 2 FMA pipes x 8 float32 lanes (AVX-512 executed as two 256-bit halves) x 2"
    elif "avx512f" in flags:
        per_cycle, why = 64, "AVX-512 with 2 FMA units: 2 x 16 float32 lanes x 2"
    elif "fma" in flags:
        per_cycle, why = 32, "AVX2: 2 FMA units x 8 float32 lanes x 2"
    else:
        per_cycle, why = 8, "SSE: 4 lanes x 2"
    peak = cores * (mhz or 0) * 1e6 * per_cycle
    return peak, f"{cores} cores x {mhz / 1e3:.2f} GHz x {per_cycle} FLOP/cycle ({why})"


def flops_part(config_name, batch, rounds, reps):
    """The step's convolution and matmul FLOPs (as the model computes them, and with every convolution
    in the original's form), the step's median time, and the machine's attainable and theoretical peak."""
    import tensorflow as tf

    import glow_tf.bijectors.networks as layers

    glow, optimizer, step, args = build_step(config_name, batch)
    ours = matmul_flops(_graph_ops(step.get_concrete_function(*args).graph))
    with layers.conv_form("plain"):
        _, _, plain_step, plain_args = build_step(config_name, batch)
        plain = matmul_flops(_graph_ops(plain_step.get_concrete_function(*plain_args).graph))
    times = time_in_process({"ours": lambda: step(*args), "plain": lambda: plain_step(*plain_args)}, rounds, reps)
    peak = peak_matmul()
    theory, assumption = theoretical_peak()
    del tf, glow, optimizer
    return {"flops_per_step": sum(ours.values()), "flops_by_op": dict(ours),
            "flops_per_step_original_form": sum(plain.values()), "step_ms": times["ours"],
            "step_ms_original_form": times["plain"], "matmul_peak_flops": peak,
            "theoretical_peak_flops": theory, "theoretical_peak_assumes": assumption}


def sample_flops_part(config_name, batch, reps):
    """The sampler's (train.py's `make_sampler`: eps at temperature 0.7, the decode, uint8) convolution
    and matmul FLOPs, its median time over `reps` calls, and the machine's peaks: what bounds sampling."""
    import tensorflow as tf

    from glow_tf import Glow, GlowConfig
    from glow_tf.training import make_sampler

    glow = Glow(GlowConfig(**common.config_dict(config_name)), seed=0)
    glow.initialize(common.random_images(max(batch, 2), glow.config.image_size))
    sampler = make_sampler(glow, seed=0)
    args = (tf.zeros([batch], tf.int32), tf.constant(0.7), tf.constant(0, tf.int64))
    flops = matmul_flops(_graph_ops(sampler.get_concrete_function(*args).graph))
    sampler(*args).numpy()
    times = []
    for i in range(reps):
        t0 = time.perf_counter()
        sampler(args[0], args[1], tf.constant(i + 1, tf.int64)).numpy()
        times.append(time.perf_counter() - t0)
    peak = peak_matmul()
    theory, assumption = theoretical_peak()
    return {"config": config_name, "batch": batch, "flops_per_sample_batch": sum(flops.values()),
            "flops_by_op": dict(flops), "sample_ms": 1e3 * common.median(times), "matmul_peak_flops": peak,
            "theoretical_peak_flops": theory, "theoretical_peak_assumes": assumption}


# --- 4. proposals: numbers ---------------------------------------------------------------------
def check_numbers(names, config_name, batch):
    """Run in a fresh process: the proposals' reference-vector errors and train-step differences."""
    import numpy as np
    import tensorflow as tf

    import glow_tf
    import proposals
    from glow_tf import GlowConfig

    # loss and gradients of the current code, then with the proposals, on equal weights and noise
    # (compared relative to each gradient's scale: Adamax turns round-off in a near-zero gradient into a
    # full step, so comparing weights after a few steps would only measure that)
    results = []
    for patched in (False, True):
        if patched:
            proposals.apply(names)
        glow, optimizer, _, (x, *_) = build_step(config_name, batch)
        params = glow.trainable_variables

        @tf.function(jit_compile="qr_logdet" in names and patched)
        def loss_and_grads():
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(glow.objective(x, seed=[0, 1])["loss"])
            return loss, tape.gradient(loss, params)

        loss, grads = loss_and_grads()
        grads = [g.numpy() for g in grads]
        # one optimiser update from the same gradients (the current code's) on both models
        update_from = results[0][1] if results else grads
        tf.function(lambda: optimizer.apply([tf.constant(g) for g in update_from], tf.constant(1e-3)))()
        results.append((float(loss), grads, [*(v.numpy() for v in params), *proposals.averages(optimizer)]))
    (loss_a, grads_a, after_a), (loss_b, grads_b, after_b) = results
    update_diff = max(float(np.max(np.abs(a - b))) for a, b in zip(after_a, after_b))
    # each gradient's error relative to its own scale, floored at 1e-3 of the largest gradient (a gradient
    # that is zero up to round-off has no scale of its own)
    floor = 1e-3 * max(float(np.max(np.abs(a))) for a in grads_a)
    grad_diff = max(float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(a))), floor)
                    for a, b in zip(grads_a, grads_b))

    worst = 0.0
    for folder in sorted(os.listdir(FIXTURES)) if os.path.isdir(FIXTURES) else []:
        path = os.path.join(FIXTURES, folder)
        if not os.path.exists(os.path.join(path, "hps.json")):
            continue
        with open(os.path.join(path, "hps.json")) as f:
            config = GlowConfig.from_dict(json.load(f), strict=False)
        glow = glow_tf.load_original_checkpoint(os.path.join(path, "model.ckpt"), config)
        ref = dict(np.load(os.path.join(path, "reference.npz")))
        y = ref["y"] if config.ycond else None
        worst = max(worst, float(np.max(np.abs(glow.objective(ref["x"], y, noise=ref["noise"])["bits_x"] - ref["bits_x"]))))
        for i, e in enumerate(glow.unflatten(glow.encode(ref["x"], y, noise=ref["noise"]))):
            worst = max(worst, float(np.max(np.abs(e - ref[f"eps_{i}"]))))
        decoded = glow.decode([ref[f"eps_{i}"] for i in range(config.n_levels)], y, postprocess=False) + 0.5
        worst = max(worst, float(np.max(np.abs(decoded - ref["decoded"]))))
    return {"reference_max_abs_err": worst, "loss_abs_diff": abs(loss_a - loss_b), "grad_max_rel_diff": grad_diff,
            "update_max_abs_diff": update_diff}


def numbers_in_subprocess(names, config_name, batch):
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--check", json.dumps(names),
                           "--check_config", config_name, "--check_batch", str(batch)],
                          capture_output=True, text=True, cwd=common.REPO)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        tail = proc.stderr.strip().splitlines()[-1:] or [""]
        return {"error": f"check exited with code {proc.returncode}: {tail[0][:300]}"}
    return json.loads(lines[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    p.add_argument("--steps", type=int, default=4, help="timed steps per variant per round")
    p.add_argument("--trace_steps", type=int, default=3, help="steps in the profiler trace")
    p.add_argument("--parts", nargs="+", default=["ops", "parts", "layers", "proposals", "flops"],
                   choices=["ops", "parts", "layers", "proposals", "flops", "sample_flops"],
                   help="which parts to run (sample_flops: the sampler of --sample_config, not run by default)")
    p.add_argument("--sample_config", nargs=2, default=["celeba", "1"], metavar=("CONFIG", "BATCH"),
                   help="the sample_flops part's configuration (bench, cifar10, celeba) and batch")
    p.add_argument("--proposals", nargs="+", default=None, metavar="NAME",
                   help="only these candidates of the proposals part (current is always timed)")
    p.add_argument("--quick", action="store_true", help="a tiny model, 2 rounds (for the tests)")
    p.add_argument("--check", default=None, help=argparse.SUPPRESS)
    p.add_argument("--check_config", default="bench", help=argparse.SUPPRESS)
    p.add_argument("--check_batch", type=int, default=16, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.check is not None:
        common.emit(check_numbers(json.loads(args.check), args.check_config, args.check_batch))
        return 0
    if args.rounds < 1 or args.steps < 1 or args.trace_steps < 1:
        p.error(f"--rounds, --steps and --trace_steps must be >= 1, got {args.rounds}, {args.steps}, "
                f"{args.trace_steps}")
    sample_name, sample_batch = args.sample_config
    if sample_name not in ("bench", "cifar10", "celeba") or not sample_batch.isdigit() or int(sample_batch) < 1:
        p.error(f"--sample_config {sample_name} {sample_batch}: expected bench, cifar10 or celeba and a positive batch")
    config_name, batch = ("quick", 4) if args.quick else ("bench", 16)
    if args.quick:
        args.rounds, args.steps, args.trace_steps = 2, 2, 1
    common.emit({"bench": "profile", "machine": common.machine(), "config": config_name, "batch": batch})

    if "ops" in args.parts:
        _, _, step, step_args = build_step(config_name, batch)
        step(*step_args), step(*step_args)
        wall, per_type, count = op_summary(step, step_args, args.trace_steps)
        total = sum(per_type.values())
        rows = []
        for op_type, ms in per_type.most_common(15):
            common.emit({"bench": "profile", "part": "ops", "op": op_type, "ms_per_step": ms,
                         "share_of_kernel_time": ms / total, "calls_per_step": round(count[op_type])})
            rows.append([op_type, common.fmt(ms), f"{100 * ms / total:.1f}%", round(count[op_type])])
        common.emit({"bench": "profile", "part": "ops", "kernel_ms_per_step": total, "wall_ms_per_step": wall})
        common.print_table(f"Kernel time by op type (profiler trace, {args.trace_steps} steps; "
                           f"kernel total {total:.0f} ms/step over 2 threads, wall {wall:.0f} ms/step)",
                           ["op type", "ms/step", "share", "calls/step"], rows)

    if "parts" in args.parts:
        res = parts(config_name, batch, args.rounds, args.steps)
        whole = res["whole step (make_train_step)"]
        for k, v in res.items():
            common.emit({"bench": "profile", "part": "parts", "name": k, "ms": v, "share_of_step": v / whole})
        common.print_table("The step taken apart (median ms, interleaved)", ["part", "ms", "of whole step"],
                           [[k, common.fmt(v), f"{100 * v / whole:.0f}%"] for k, v in res.items()])

    if "layers" in args.parts:
        res = layer_times(config_name, batch, args.rounds, args.steps)
        for k, v in res.items():
            common.emit({"bench": "profile", "part": "layers", "name": k, "ms": v})
        common.print_table("One flow step's convolutions, forward + both gradients (median ms, interleaved; "
                           "x K steps per level)", ["convolution", "ms"], [[k, common.fmt(v, 2)] for k, v in res.items()])

    if "proposals" in args.parts:
        import train_speed

        cfg = common.config_dict(config_name)
        candidates = CANDIDATES if not args.quick else CANDIDATES[:2]
        if args.proposals:
            candidates = [c for c in CANDIDATES if c[0] == "current" or c[0] in args.proposals]
        numbers = {name: numbers_in_subprocess(props, config_name, batch) for name, props, _, _ in candidates
                   if props}
        specs = [(name, {"kind": "ours", "config": {**cfg, "lu": lu}, "batch": batch, "jit": jit, "ckpt": 0,
                         "proposals": props}) for name, props, jit, lu in candidates]
        workers = []
        try:
            for name, spec in specs:
                workers.append(common.make_worker(name, "train_speed.py", spec,
                                                  train_speed.build_ours if args.quick else None))
                if len(workers) % 2 == 0:
                    workers[-2].wait_ready(), workers[-1].wait_ready()
            times = common.interleave_when_ready(workers, args.rounds, args.steps)
        finally:
            common.close_all(workers)
        base = common.median(times.get("current", []))
        rows = []
        for w in workers:
            t = common.median(times.get(w.name, []))
            r = {"bench": "profile", "part": "proposals", "name": w.name, "ms_per_step": 1e3 * t if t else None,
                 "speedup_vs_current": base / t if t and base else None, **numbers.get(w.name, {}),
                 **{k: v for k, v in w.info.items() if k != "ready"}}
            if w.error:
                r["error"] = w.error
            common.emit(r)
            rows.append([w.name, common.fmt(r["ms_per_step"]), common.fmt(r["speedup_vs_current"], 2),
                         f"{r['reference_max_abs_err']:.1e}" if "reference_max_abs_err" in r else "",
                         f"{r['loss_abs_diff']:.1e}" if "loss_abs_diff" in r else "",
                         f"{r['grad_max_rel_diff']:.1e}" if "grad_max_rel_diff" in r else "",
                         f"{r['update_max_abs_diff']:.1e}" if "update_max_abs_diff" in r else "",
                         (r.get("error") or "")[:60]])
        common.print_table(f"Proposed changes, our step (plain 1x1 conv, no checkpointing), {config_name} configuration, "
                           f"batch {batch}", ["variant", "ms/step", "speed-up", "ref. vectors max err",
                                              "loss diff", "grad max rel diff",
                                              "update max diff", ""], rows)
    if "flops" in args.parts:
        r = flops_part(config_name, batch, args.rounds, args.steps)
        common.emit({"bench": "profile", "part": "flops", **r})
        rows = []
        for label, flops, ms in (("our step (forms as chosen here)", r["flops_per_step"], r["step_ms"]),
                                 ("our step, every conv in the original's form", r["flops_per_step_original_form"],
                                  r["step_ms_original_form"])):
            achieved = flops / (ms / 1e3)
            rows.append([label, f"{flops / 1e9:.2f}", common.fmt(ms), f"{achieved / 1e9:.1f}",
                         f"{100 * achieved / r['matmul_peak_flops']:.0f}%", f"{100 * achieved / r['theoretical_peak_flops']:.0f}%"])
        common.print_table(f"Convolution + matmul FLOPs per step (forward + backward) against the peak: "
                           f"attainable {r['matmul_peak_flops'] / 1e9:.0f} GFLOP/s (2048^2 float32 MatMul, this run), "
                           f"at the nominal clock {r['theoretical_peak_flops'] / 1e9:.0f} GFLOP/s ({r['theoretical_peak_assumes']})",
                           ["step", "GFLOP", "ms", "GFLOP/s", "of attainable", "of nominal"], rows)
    if "sample_flops" in args.parts:
        name, batch = ("quick", 2) if args.quick else (sample_name, int(sample_batch))
        r = sample_flops_part(name, batch, args.rounds * args.steps)
        common.emit({"bench": "profile", "part": "sample_flops", **r})
        achieved = r["flops_per_sample_batch"] / (r["sample_ms"] / 1e3)
        common.print_table(f"Sampling ({name} configuration, batch {batch}, make_sampler): convolution + matmul "
                           f"FLOPs against the peak: attainable {r['matmul_peak_flops'] / 1e9:.0f} GFLOP/s, "
                           f"at the nominal clock {r['theoretical_peak_flops'] / 1e9:.0f} GFLOP/s",
                           ["GFLOP", "ms", "GFLOP/s", "of attainable", "of nominal"],
                           [[f"{r['flops_per_sample_batch'] / 1e9:.2f}", common.fmt(r["sample_ms"]), f"{achieved / 1e9:.1f}",
                             f"{100 * achieved / r['matmul_peak_flops']:.0f}%",
                             f"{100 * achieved / r['theoretical_peak_flops']:.0f}%"]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
