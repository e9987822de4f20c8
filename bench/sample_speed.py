#!/usr/bin/env python
"""Sampling latency: median milliseconds to draw a batch of uint8 samples, after warm-up, beside the
original release when --original_dir is given, all timed in the same run, interleaved.

    python bench/sample_speed.py                      # CelebA-HQ at batch 1, CIFAR-10 at batch 64
    python bench/sample_speed.py --configs celeba --original_dir path/to/openai_glow
    python bench/sample_speed.py --quick              # a tiny model (for the tests)

Variants (the models are untrained: the latency does not depend on the weights):
- `glow.sample`: what `python sample.py` runs (numpy unit normals per sample, then the model's
  compiled decode and postprocess);
- `make_sampler`: what train.py draws its sample grids with (stateless normals inside the graph);
- `decode jit`: the same decode + postprocess compiled with XLA (bench-local, not in glow_tf);
- `make_sampler literal`: make_sampler with the layers as the original writes them (no tap-form
  convolutions, no actnorm folded into the filters; `common.literal_layers`), i.e. the code before
  those speed changes;
- the original: its `m.sample(y, eps_std)` (TF1 graph, feed_dict), what its train.py calls.
All at temperature 0.7.
"""
import argparse
import sys

import common

TEMPERATURE = 0.7


def sampler_step(glow, how, batch):
    """A function drawing one batch of uint8 samples at TEMPERATURE from `glow` the way `how` names
    ("glow.sample", "make_sampler" or "decode_jit"; see the module's docstring), a new seed each call."""
    import tensorflow as tf

    from glow_tf.training import make_sampler

    counter = [0]
    if how == "glow.sample":
        def step():
            glow.sample(batch, TEMPERATURE, seed=counter[0], batch_size=batch)
            counter[0] += 1
    elif how == "make_sampler":
        sampler = make_sampler(glow, seed=0)
        y = tf.zeros([batch], tf.int32)

        def step():
            sampler(y, tf.constant(TEMPERATURE), tf.constant(counter[0], tf.int64)).numpy()
            counter[0] += 1
    elif how == "decode_jit":
        @tf.function(jit_compile=True)
        def decode(eps):
            return glow.postprocess(glow.decode_with_log_det(eps)[0])

        def step():
            eps = glow.sample_latents(batch, TEMPERATURE, seed=counter[0])
            decode(eps).numpy()
            counter[0] += 1
    else:
        raise ValueError(f"unknown sampler {how!r}")
    return step


def build_ours(spec):
    import time

    import numpy as np

    from glow_tf import Glow, GlowConfig

    if spec.get("literal"):
        common.literal_layers()
    config = GlowConfig(**spec["config"])
    batch, how = spec["batch"], spec["how"]
    glow = Glow(config, seed=0)
    glow.initialize(common.random_images(max(batch, 2), config.image_size))
    step = sampler_step(glow, how, batch)
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    n_params = sum(int(np.prod(v.shape)) for v in glow.trainable_variables)
    return step, 2, {"params": n_params, "first_step_s": round(first, 1)}


def _script(spec):
    return "original.py" if spec["kind"] == "original" else "sample_speed.py"


MEMORY_MARGIN = 0.8  # plan to fill at most this share of the available memory


def workers_that_fit(peak_bytes, available_bytes, margin=MEMORY_MARGIN):
    """How many more workers of `peak_bytes` resident each fit into `available_bytes` (at least 0)."""
    if not peak_bytes or available_bytes is None:
        return 1 << 30
    return max(0, int(margin * available_bytes // peak_bytes))


def measure_what_fits(specs, rounds, steps, build=None):
    """(one Worker per variant, {name: per-draw seconds}), measured as memory allows: the first worker
    is built alone and its resident size measured; if the others fit beside it into the available
    memory (with a margin) they are built one by one and all timed in turn as usual; otherwise they
    run in groups of as many as fit, rebuilt every round, the groups in rotating order, so that every
    variant is still timed in every round. A worker that dies is named with its exit status or signal
    and the likely cause in one line, and the others go on. `build` (--quick) builds the variants
    that patch nothing in this process."""
    def start(name, spec):
        w = common.make_worker(name, _script(spec), spec, build)
        w.wait_ready()
        w.resident_bytes()
        return w

    first = start(*specs[0])
    peak = first.peak_rss
    fit = 1 + workers_that_fit(peak, common.available_bytes())
    if fit >= len(specs):
        workers = [first]
        try:
            for name, spec in specs[1:]:
                workers.append(start(name, spec))
            return workers, common.interleave(workers, rounds, steps)
        finally:
            common.close_all(workers)
    avail = common.available_bytes()
    print(f"{len(specs)} workers of about {peak / 1e9:.1f} GB resident each, {avail / 1e9:.1f} GB available: "
          f"{fit} at a time, rebuilt every round", file=sys.stderr, flush=True)
    last, times, alive = {}, {}, {specs[0][0]: first}
    for r in range(rounds):
        order = [(n, s) for n, s in specs[r % len(specs):] + specs[:r % len(specs)]
                 if last.get(n) is None or last[n].error is None]
        for g in range(0, len(order), fit):
            group = []
            try:
                for name, spec in order[g:g + fit]:
                    w = alive.pop(name, None) or start(name, spec)
                    last[name] = w
                    group.append(w)
                for w in group:
                    if w.error is None:
                        common.run_or_report(w, steps, times)
            finally:
                common.close_all(group)
    common.close_all(alive.values())
    return [last[n] for n, _ in specs if n in last], times


def run_config(args, config_name, batch):
    cfg = common.config_dict(config_name)
    specs = [(f"ours {how}", {"kind": "ours", "config": cfg, "batch": batch, "how": how})
             for how in ("glow.sample", "make_sampler", "decode_jit")]
    specs.append(("ours make_sampler literal", {**specs[1][1], "literal": True}))
    if args.original_dir:
        specs.append(("original (TF1 graph, m.sample)", {"kind": "original", "mode": "sample", "temperature": TEMPERATURE,
                                                          "original_dir": args.original_dir, "config": cfg,
                                                          "batch": batch}))
    if args.onednn:
        specs += [(f"{name} oneDNN", {**spec, "env": common.ONEDNN_ENV}) for name, spec in specs
                  if name in ("ours make_sampler", "original (TF1 graph, m.sample)")]
    specs = common.select_variants(specs, args.variants, config_name)
    workers, times = measure_what_fits(specs, args.rounds, args.steps, build_ours if config_name == "quick" else None)
    results = {}
    for w in workers:
        t = common.median(times.get(w.name, []))
        results[w.name] = r = {"bench": "sample_speed", "config": config_name, "batch": batch, "variant": w.name,
                               "ms": 1e3 * t if t else None, "images_per_s": batch / t if t else None,
                               "n_timed": len(times.get(w.name, [])),
                               **{k: v for k, v in w.info.items() if k != "ready"}}
        if w.error:
            r["error"] = w.error
    orig = results.get("original (TF1 graph, m.sample)", {}).get("ms")
    rows = []
    for name, r in results.items():
        if name.startswith("ours"):
            r["ratio_to_original"] = r["ms"] / orig if r["ms"] and orig else None
        common.emit(r)
        rows.append([name, common.fmt(r["ms"]), common.fmt(r["images_per_s"], 2), common.fmt(r.get("ratio_to_original"), 2),
                     r.get("first_step_s", ""), ("error: " + r["error"][:60]) if "error" in r else ""])
    common.print_table(f"Sampling latency, {config_name} configuration, batch {batch}, T={TEMPERATURE} "
                       f"({args.rounds} rounds x {args.steps} draws, interleaved)",
                       ["variant", "ms", "images/s", "time ours/original", "first draw s", ""], rows)
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=["celeba", "cifar10"], choices=["celeba", "cifar10"],
                   help="configurations to measure (celeba at batch 1, cifar10 at batch 64)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    p.add_argument("--steps", type=int, default=3, help="timed draws per variant per round")
    p.add_argument("--original_dir", default="",
                   help="a checkout of openai/glow (model.py, tfops.py, optim.py) to time beside ours")
    common.add_variant_args(p, "also time make_sampler and the original with TF_ENABLE_ONEDNN_OPTS=1 (oneDNN kernels)")
    p.add_argument("--quick", action="store_true",
                   help="a tiny model, 2 rounds of 2 draws, variants that patch nothing built in this process "
                        "(for the tests)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:
        return common.worker_main(args.worker, build_ours)
    if args.rounds < 1 or args.steps < 1:
        p.error(f"--rounds and --steps must be >= 1, got {args.rounds}, {args.steps}")
    if args.original_dir:
        import original
        original.check_dir(args.original_dir)
    common.emit({"bench": "sample_speed", "machine": common.machine()})
    if args.quick:
        args.rounds, args.steps = 2, 2
        run_config(args, "quick", 2)
    else:
        for name in args.configs:
            run_config(args, name, {"celeba": 1, "cifar10": 64}[name])
    print(f"\nQuoted by the issue (not measured in this run): the original draws one 256x256 CelebA-HQ sample in "
          f"~{common.QUOTED['original_celeba_sample_s']} s on this kind of 2-core CPU; the paper reports "
          f"{common.QUOTED['paper_celeba_sample_ms_1080ti']} ms on a GTX 1080 Ti. Target: at most 0.7x the original.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
