#!/usr/bin/env python
"""Training throughput: images/s of train.py's real step, beside tfp.bijectors.Glow (and the original
release when --original_dir is given), all timed in the same run, interleaved.

    python bench/train_speed.py                       # bench and CIFAR-10 configurations
    python bench/train_speed.py --configs bench --original_dir path/to/openai_glow --proposed
    python bench/train_speed.py --quick               # a tiny model, seconds; what the tests run

Ours is `glow_tf.training.make_train_step` (objective, gradients, adamax, Polyak update, skip on
non-finite) with a single-process `Distributed()`, on one fixed uint8 batch, for every combination
of jit (XLA) on/off, gradient checkpointing on/off, plain/LU 1x1 conv. TFP is `tfp.bijectors.Glow`
with the same levels and steps and its default networks at the configuration's width, trained on the
same loss (dequantised bits/dim under a standard normal base) with our Adamax. `... literal` is our
step with the layers as the original writes them (`common.literal_layers`: the code before the
tap-form convolution and the folded actnorms). `--onednn` adds the reference and the original with
TensorFlow's oneDNN kernels switched on; `--variants` picks variants by name. Figure: images/s =
batch / median step time over rounds x steps timed steps after warm-up.
"""
import argparse
import itertools
import math
import sys

import common

OURS_GRID = list(itertools.product(("plain", "lu"), (0, 1), (0, 1)))  # (1x1 conv, jit, checkpointing)


# --- workers ----------------------------------------------------------------------------------
def build_ours(spec):
    """Our training step as train.py builds it; the step closure mirrors train.py's loop body."""
    import time

    import numpy as np

    import proposals
    proposals.apply(spec.get("proposals", []))
    if spec.get("literal"):
        common.literal_layers()
    glow, _, train_step, (x, y, lr) = common.our_train_step(spec["config"], spec["batch"], jit=spec["jit"],
                                                            ckpt=spec["ckpt"])
    step = common.train_step_runner(train_step, x, y, lr)
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    n_params = sum(int(np.prod(v.shape)) for v in glow.trainable_variables)
    return step, 2, {"params": n_params, "first_step_s": round(first, 1),
                     "traces": train_step.experimental_get_tracing_count()}


def build_tfp(spec):
    """tfp.bijectors.Glow of the same shape, its default networks at `width`, same loss, our Adamax."""
    import time

    import numpy as np
    import tensorflow as tf
    import tensorflow_probability as tfp

    from glow_tf.optim import Optimizer, beta2_from

    tfb, tfd = tfp.bijectors, tfp.distributions
    cfg, batch = spec["config"], spec["batch"]
    size, n_bins = cfg["image_size"], 2.0 ** cfg.get("n_bits_x", 8)
    n_dims = size * size * 3
    glow = tfb.Glow(output_shape=(size, size, 3), num_glow_blocks=cfg["n_levels"],
                    num_steps_per_block=cfg["depth"],
                    coupling_bijector_fn=lambda shape: tfb.GlowDefaultNetwork(shape, num_hidden=cfg["width"]),
                    exit_bijector_fn=tfb.GlowDefaultExitNetwork, seed=0)
    dist = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0.0, 1.0), [n_dims]), glow)

    def bits_per_dim(x, seed):
        z = tf.cast(x, tf.float32) / n_bins - 0.5
        z = z + tf.random.stateless_uniform(tf.shape(z), seed, 0.0, 1.0 / n_bins)
        return -(dist.log_prob(z) - n_dims * math.log(n_bins)) / (n_dims * math.log(2.0))

    x = tf.constant(common.random_images(batch, size))
    bits_per_dim(x, [0, 0])  # builds the Keras layers; the actnorms initialise on this batch
    params = glow.trainable_variables
    optimizer = Optimizer(params, beta2=beta2_from(math.ceil(50000 / batch)))

    @tf.function(jit_compile=bool(spec["jit"]), reduce_retracing=True)
    def train_step(x, lr, counter):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(bits_per_dim(x, tf.stack([tf.constant(0, tf.int64), counter])))
        grads = tape.gradient(loss, params)
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
        optimizer.apply(grads, lr, skip=tf.logical_not(finite))
        return loss, finite

    counter = tf.Variable(0, dtype=tf.int64)
    lr = tf.constant(1e-4)

    def step():
        loss, _ = train_step(x, lr, counter)
        counter.assign_add(1)
        loss.numpy()

    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    return step, 2, {"params": sum(int(np.prod(v.shape)) for v in params), "first_step_s": round(first, 1)}


BUILDERS = {"ours": build_ours, "tfp": build_tfp}  # by a spec's kind; the original's is in original.py


# --- the benchmark ----------------------------------------------------------------------------
def variants(args, config_name, batch):
    """(name, spec) of every worker for one configuration; the first is the reference (train.py's step
    without checkpointing, as the original was measured), then the baselines, then the rest."""
    cfg = common.config_dict(config_name)
    ours, baselines, proposed = [], [], []
    grid = OURS_GRID if not args.quick else [("plain", 0, 0), ("plain", 0, 1), ("lu", 1, 0)]
    for perm, jit, ckpt in grid:
        spec = {"kind": "ours", "config": {**cfg, "lu": perm == "lu"}, "batch": batch, "jit": jit, "ckpt": ckpt}
        ours.append((f"ours {perm} jit={jit} ckpt={ckpt}", spec))
    if args.proposed:
        for perm, jit in (("plain", 0), ("plain", 1), ("lu", 0), ("lu", 1)):
            spec = {"kind": "ours", "config": {**cfg, "lu": perm == "lu"}, "batch": batch, "jit": jit, "ckpt": 0,
                    "proposals": args.proposed}
            proposed.append((f"ours+proposed {perm} jit={jit} ckpt=0", spec))
    baselines.append((f"{ours[0][0]} literal", {**ours[0][1], "literal": True}))
    if args.original_dir:
        baselines.append(("original (TF1 graph, adamax)",
                          {"kind": "original", "mode": "train", "original_dir": args.original_dir,
                           "config": cfg, "batch": batch}))
    if args.onednn:  # the same step with TensorFlow's oneDNN CPU kernels switched on (an environment variable)
        for name, spec in ours[:1] + (baselines[-1:] if args.original_dir else []):
            proposed.append((f"{name} oneDNN", {**spec, "env": common.ONEDNN_ENV}))
    for jit in ((0,) if args.quick else (0, 1)):
        baselines.append((f"tfp.bijectors.Glow jit={jit}", {"kind": "tfp", "config": cfg, "batch": batch, "jit": jit}))
    # the reference is measured in any case: every ratio goes through it
    return common.select_variants(ours[:1] + baselines + proposed + ours[1:], args.variants, config_name, keep=1)


def measure_groups(args, specs, script_for):
    """{name: (median step seconds, speed relative to the reference, info, error)}.

    Each worker holds ~1.5 GB (TensorFlow and the traced step; 5-6.5 GB for CIFAR-10), so at most
    --max_workers live at once: the variants are measured in groups, each group together with the
    reference (the first spec), and every variant's speed is also given relative to the reference
    timed beside it in its group.
    """
    ref_name, ref_spec = specs[0]
    others = specs[1:]
    size = max(1, args.max_workers - 1)
    out = {}
    for g in range(0, max(1, len(others)), size):
        group = [(ref_name, ref_spec)] + others[g:g + size]
        workers = []
        try:
            for name, spec in group:
                build = BUILDERS.get(spec["kind"]) if args.quick else None
                workers.append(common.make_worker(name, script_for(spec), spec, build))
                if len(workers) % args.concurrency == 0:
                    for w in workers[-args.concurrency:]:
                        w.wait_ready()
            times = common.interleave_when_ready(workers, args.rounds, args.steps)
        finally:
            common.close_all(workers)
        t_ref = common.median(times.get(ref_name, []))
        for w in workers:
            t = common.median(times.get(w.name, []))
            if w.name == ref_name and ref_name in out:
                continue
            out[w.name] = (t, t_ref / t if t and t_ref else None, {k: v for k, v in w.info.items() if k != "ready"},
                           w.error, len(times.get(w.name, [])))
    return out


def run_config(args, config_name, batch, specs):
    measured = measure_groups(args, specs, lambda spec: "original.py" if spec["kind"] == "original" else "train_speed.py")
    ref_name = specs[0][0]
    rel = {name: m[1] for name, m in measured.items()}
    results = {}
    for name, (t, vs_ref, info, error, n) in measured.items():
        r = results[name] = {"bench": "train_speed", "config": config_name, "batch": batch, "variant": name,
                             "images_per_s": batch / t if t else None, "ms_per_step": 1e3 * t if t else None,
                             "speed_vs_reference": vs_ref, "reference": ref_name, "n_steps_timed": n, **info}
        if error:
            r["error"] = error
    # ratios through the reference: (ours / reference) / (baseline / reference), each measured side by side
    for base_key, base_name in (("ratio_vs_tfp", "tfp.bijectors.Glow jit=0"),
                                ("ratio_vs_original", "original (TF1 graph, adamax)")):
        for name, r in results.items():
            if name.startswith("ours"):
                r[base_key] = rel[name] / rel[base_name] if rel.get(name) and rel.get(base_name) else None
    rows = []
    for name, r in results.items():
        common.emit(r)
        rows.append([name, common.fmt(r["images_per_s"]), common.fmt(r["ms_per_step"]),
                     common.fmt(r["speed_vs_reference"], 2), common.fmt(r.get("ratio_vs_tfp"), 2),
                     common.fmt(r.get("ratio_vs_original"), 2), r.get("first_step_s", ""),
                     ("error: " + r["error"][:60]) if "error" in r else ""])
    common.print_table(f"Training throughput, {config_name} configuration, batch {batch} "
                       f"({args.rounds} rounds x {args.steps} steps, interleaved; speed relative to {ref_name!r} "
                       f"timed in the same group)",
                       ["variant", "images/s", "ms/step", "vs ref", "ours/TFP", "ours/original", "first step s", ""],
                       rows)
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=["bench", "cifar10"], choices=["bench", "cifar10"],
                   help="configurations to measure (bench at batch 16, cifar10 at batch 4)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    p.add_argument("--steps", type=int, default=4, help="timed steps per variant per round")
    p.add_argument("--concurrency", type=int, default=2, help="workers building their step at once")
    p.add_argument("--max_workers", type=int, default=6,
                   help="worker processes alive at once (~1.5 GB each, 5-6.5 GB for cifar10); more variants "
                        "are measured in groups")
    p.add_argument("--original_dir", default="",
                   help="a checkout of openai/glow (model.py, tfops.py, optim.py) to time beside ours")
    p.add_argument("--proposed", nargs="*", default=None,
                   help="also time our step with these bench/proposals.py changes (no names: all of them)")
    common.add_variant_args(p, "also time the reference and the original with TF_ENABLE_ONEDNN_OPTS=1 (oneDNN "
                               "kernels); the reference (ours plain jit=0 ckpt=0) is measured whatever --variants says")
    p.add_argument("--quick", action="store_true",
                   help="a tiny model, 2 rounds of 2 steps, variants that patch nothing built in this process "
                        "(for the tests)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:
        import json
        kind = json.loads(args.worker)["kind"]
        return common.worker_main(args.worker, BUILDERS[kind])
    if args.proposed is not None and not args.proposed:
        import proposals
        args.proposed = [n for n in proposals.PROPOSALS if n != "edge_split"]
    if min(args.rounds, args.steps, args.concurrency, args.max_workers) < 1:
        p.error(f"--rounds, --steps, --concurrency and --max_workers must be >= 1, got {args.rounds}, "
                f"{args.steps}, {args.concurrency}, {args.max_workers}")
    if args.original_dir:
        import original
        original.check_dir(args.original_dir)
    if args.quick:
        args.rounds, args.steps = 2, 2
    batches = {"quick": 4} if args.quick else {name: {"bench": 16, "cifar10": 4}[name] for name in args.configs}
    specs = {name: variants(args, name, batch) for name, batch in batches.items()}  # bad --variants stop here
    common.emit({"bench": "train_speed", "machine": common.machine()})
    for name, batch in batches.items():
        run_config(args, name, batch, specs[name])
    print("\nQuoted by the issue (not measured in this run): original ~%d-%d images/s, y0ast/Glow-PyTorch ~%d-%d, "
          "tfp.bijectors.Glow ~%d-%d, on this kind of 2-core machine, bench configuration." % (
              *common.QUOTED["original_train_img_s"], *common.QUOTED["pytorch_train_img_s"],
              *common.QUOTED["tfp_train_img_s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
