#!/usr/bin/env python
"""How exactly reversible backprop rebuilds each flow step's input (glow_tf.reversible.reconstruction_errors).

    python bench/reconstruction.py                       # bench configuration at K, 2K, 4K, at init
    python bench/reconstruction.py --logdir runs/digits  # a trained run of train.py (its latest checkpoint)
    python bench/reconstruction.py --quick               # a tiny model (for the tests)

For each model: per level, the relative error max|rebuilt - stored| / max|stored| of the input of the
level's first step (where it is largest: round-off accumulates backwards along the chain) and the
largest over the level's steps, on a batch of `--batch` inputs (random uint8 images for a model at
init; for a trained run, the digits' test images or random ones, `--images`), dequantised with fixed
noise.
"""
import argparse
import sys

import common


def errors_of(glow, images):
    from glow_tf.reversible import reconstruction_errors

    errors = reconstruction_errors(glow, glow.dequantize(images, seed=[0, 0]))
    return [{"first_step": e[0], "max": max(e)} for e in errors]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="bench", choices=["bench", "cifar10"], help="configuration at init")
    p.add_argument("--logdir", default=None, help="a run of train.py: measure its latest checkpoint instead")
    p.add_argument("--images", default="digits", choices=["digits", "random"],
                   help="with --logdir: the digits test images (a digits run) or random images")
    p.add_argument("--batch", type=int, default=16, help="images per measurement")
    p.add_argument("--quick", action="store_true", help="a tiny model (for the tests)")
    args = p.parse_args(argv)
    if args.batch < 1:
        p.error(f"--batch {args.batch}: expected a positive integer")
    import numpy as np

    from glow_tf import Glow, GlowConfig
    from glow_tf.checkpoint import load_run

    common.emit({"bench": "reconstruction", "machine": common.machine()})
    rows = []
    if args.logdir:
        from data_loaders.digits import load_digits, load_digits_4bit

        glow, prefix = load_run(args.logdir)
        cfg = glow.config
        if args.images == "digits":  # the digits' test images, as the run's problem prepares them
            images = (load_digits_4bit if cfg.n_bits_x == 4 else load_digits)(cfg.image_size)[2][:args.batch]
        else:
            images = common.random_images(args.batch, cfg.image_size)
        models = [(f"trained {prefix}", glow, images)]
    else:
        name = "quick" if args.quick else args.config
        base = common.config_dict(name)
        models = []
        for depth in (base["depth"], 2 * base["depth"], 4 * base["depth"]):
            cfg = GlowConfig(**{**base, "depth": depth})
            glow = Glow(cfg, seed=0)
            images = common.random_images(args.batch, cfg.image_size)
            glow.initialize(images, seed=[0, 0])
            models.append((f"{name} K={depth} at init", glow, images))
    for label, glow, images in models:
        for level, e in enumerate(errors_of(glow, np.asarray(images))):
            common.emit({"bench": "reconstruction", "model": label, "level": level, **e})
            rows.append([label, level, f"{e['first_step']:.2e}", f"{e['max']:.2e}"])
    common.print_table("Relative error of the rebuilt flow-step inputs (max|rebuilt - stored| / max|stored|)",
                       ["model", "level", "level's first step", "max over steps"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
