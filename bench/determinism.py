#!/usr/bin/env python
"""What train.py --deterministic 1 costs: training step time with TensorFlow's op determinism on and
off, side by side.

    python bench/determinism.py                  # bench configuration, batch 16, eager step and XLA
    python bench/determinism.py --quick          # a tiny model, a few steps

Op determinism is process-wide and cannot be switched off again, so each variant (determinism off/on,
with and without XLA) is built in its own worker process (common.Worker) and the workers are timed in
turn, rotating the order each round, so that all of them see the same machine. On the CPU TensorFlow's
kernels are already deterministic and the figure is the cost of the switch itself (tf.data and the
kernels' selection); on a GPU it is the price of cuDNN's and XLA's deterministic algorithms, which
depends on the GPU and the model: run it there.
"""
import argparse
import sys

import common

BATCH = {False: 16, True: 4}


def build(spec):
    """(step, warmup steps, info) for one variant, in this worker process."""
    import tensorflow as tf

    from glow_tf.determinism import determinism_enabled, set_determinism

    set_determinism(spec["deterministic"])  # before the first op
    _, _, step, (x, y, lr) = common.our_train_step(common.CONFIGS[spec["config"]], spec["batch"], jit=spec["jit"])
    counter = tf.Variable(0, dtype=tf.int64)

    def run():
        step(x, y, lr, counter)[0].numpy()
        counter.assign_add(1)

    return run, 2, {"determinism": determinism_enabled()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model and a few steps (for the tests)")
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds (default 5, --quick 1)")
    parser.add_argument("--steps", type=int, default=None, help="steps per worker per round (default 5, --quick 2)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return common.worker_main(args.worker, build)
    rounds = args.rounds or (1 if args.quick else 5)
    steps = args.steps or (2 if args.quick else 5)
    config = "quick" if args.quick else "bench"
    batch = BATCH[args.quick]
    common.emit({"machine": common.machine()})
    variants = [(f"{'xla' if jit else 'eager'} determinism {'on' if det else 'off'}",
                 {"config": config, "batch": batch, "jit": jit, "deterministic": det})
                for jit in (0, 1) for det in (0, 1)]
    workers = [common.Worker(name, "determinism.py", spec) for name, spec in variants]
    try:
        times = common.interleave_when_ready(workers, rounds, steps)
    finally:
        common.close_all(workers)
    failed = [w for w in workers if w.error]
    for w in failed:
        print(w.error, file=sys.stderr)
    rows = []
    for w in workers:
        if w.error:
            continue
        seconds = common.median(times[w.name])
        off = common.median(times.get(w.name.replace(" on", " off"), []))
        record = {"variant": w.name, "config": config, "batch": batch, "step_s": round(seconds, 4),
                  "images_per_s": round(batch / seconds, 1), "determinism": w.info.get("determinism"),
                  "ratio_to_off": round(seconds / off, 3) if off else None, "steps_timed": len(times[w.name])}
        common.emit(record)
        rows.append([w.name, common.fmt(record["step_s"], 4), common.fmt(record["images_per_s"]),
                     common.fmt(record["ratio_to_off"], 3)])
    common.print_table(f"training step, {config} configuration, batch {batch} (median over {rounds}x{steps} steps)",
                       ["variant", "step s", "images/s", "time vs off"], rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
