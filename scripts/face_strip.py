"""One held-out CelebA face moved along several attribute directions: one row per attribute, one column
per alpha (the demo's manipulate_range, -1 to +1), every cell a decode of the model (the alpha-0 column
is the model's reconstruction; the photograph itself is never written).

    python scripts/face_strip.py --logdir RUN --directions RUN/z_manipulate.npy \\
        --attr Smiling Eyeglasses Male --points 5 --zoom 2 --out docs/faces_strip.png

The face is one of the run's held-out faces (its CelebA folder's test stream: partition 1, or the last
10% without a partition file), cropped and resized exactly as train.py reads it; `--face 009001.jpg`
names it (default: the first held-out face). It is encoded with the bin-centre noise, so alpha 0
decodes to the face on the model's 2**n_bits_x levels.
"""
import argparse
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def run_celeba_dir(logdir):
    """The --data_dir of a run trained with --problem celeba (the flags on its train.txt's first line)."""
    path = os.path.join(logdir, "train.txt")
    flags = json.loads(open(path).readline()) if os.path.exists(path) else {}
    if flags.get("problem") != "celeba" or not flags.get("data_dir"):
        raise ValueError(f"{logdir!r} is not a run trained with --problem celeba (train.txt); give --celeba DIR")
    return flags["data_dir"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--logdir", required=True, help="a train.py run on a CelebA folder (its latest checkpoint)")
    p.add_argument("--directions", required=True, help="an .npz of `python -m glow_tf direction`, or z_manipulate.npy")
    p.add_argument("--attr", nargs="+", default=["Smiling", "Eyeglasses", "Male"], help="one row per attribute")
    p.add_argument("--celeba", help="the CelebA folder (default: the run's --data_dir)")
    p.add_argument("--face", help="file name of a held-out face (default: the first held-out face)")
    p.add_argument("--points", type=int, default=5, help="alphas from -1 to +1 (default 5)")
    p.add_argument("--zoom", type=int, default=1, help="enlarge each pixel to zoom x zoom (default 1)")
    p.add_argument("--out", required=True, help="the PNG")
    args = p.parse_args(argv)
    if args.zoom < 1:
        p.error(f"--zoom {args.zoom}: expected a positive integer")

    from glow_tf.cli.quiet import import_tensorflow_quietly  # noqa: PLC0415

    import_tensorflow_quietly()
    from data_loaders import celeba  # noqa: PLC0415
    from glow_tf import directions, images, load_run  # noqa: PLC0415

    glow, prefix = load_run(args.logdir)
    try:
        found = directions.load_directions(args.directions, glow.config.n_dims)
        rows = np.stack([directions.pick_direction(found, name) for name in args.attr])
        alphas = directions.range_alphas(args.points)
        folder = celeba.CelebAFolder(args.celeba or run_celeba_dir(args.logdir))
    except (ValueError, FileNotFoundError) as e:
        p.error(str(e))
    held_out = [f for f, part in zip(folder.files, folder.partition) if part == 1]
    face = args.face or held_out[0]
    if face not in held_out:
        p.error(f"--face {face!r} is not one of the {len(held_out)} held-out faces ({held_out[0]} ... {held_out[-1]})")
    x = folder.load([os.path.join(folder.data_dir, celeba.IMAGE_DIR, face)], glow.config.image_size)
    z = glow.encode(x, noise="centre")[0]
    cells = np.concatenate([glow.manipulate(z, d, alphas) for d in rows])  # [rows * points, H, W, C]
    if args.zoom > 1:
        cells = cells.repeat(args.zoom, axis=1).repeat(args.zoom, axis=2)
    images.save_grid(cells, args.out, n_cols=len(alphas))
    print(f"wrote {args.out}: {face} from {prefix}, rows {', '.join(args.attr)}, alphas "
          f"{', '.join(f'{a:g}' for a in alphas)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
