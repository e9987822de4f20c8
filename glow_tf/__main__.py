"""Command line for sampling and the latent-space tools: `python -m glow_tf COMMAND ...` or `glow-tf
COMMAND ...` (the installed console script), or `python sample.py [COMMAND] ...` (whose default command
is `sample`). `train` hands its arguments to glow_tf.cli.train (train.py's flags).

Commands: sample, encode, decode, reconstruct, interpolate, direction, manipulate, export, serve. Each
loads a model in one of three ways:
  --logdir RUN                       a train.py run: its config.json and latest (--which best: best)
                                     checkpoint; --polyak loads the Polyak averages
  --restore_path PREFIX              one checkpoint of a run (the prefix, without .index)
  --restore_path PREFIX --hps FILE   a TF1 checkpoint of the original release, with its
                                     hyper-parameters (an hps JSON, or the original's train.txt)
Bad input gives one `error: ...` line and exit status 2.
"""
if __name__ == "__main__":  # `python -m glow_tf`: TensorFlow's start-up lines are dropped as it loads
    from glow_tf.cli.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()

import argparse  # noqa: E402 (after TensorFlow's quiet import, when run as a program)
import contextlib
import itertools
import json
import os
import sys

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

import data_loaders
import glow_tf
from glow_tf import directions
from glow_tf import images as img
from glow_tf import latents

COMMANDS = ("sample", "encode", "decode", "reconstruct", "interpolate", "direction", "manipulate", "export", "serve")


def _log(args, message):
    if not args.quiet:
        print(message, file=sys.stderr)


# --- the model ----------------------------------------------------------------------------------------
def read_original_hps(path):
    """A GlowConfig from the original's hyper-parameters: a JSON object (e.g. the reference folders'
    hps.json) or the original's train.txt / test.txt, whose first line is `json.dumps(hps.__dict__)`."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no hyper-parameter file {path!r}")
    with open(path) as f:
        text = f.read()
    try:
        hps = json.loads(text)
    except json.JSONDecodeError:
        try:
            hps = json.loads(text.splitlines()[0]) if text.strip() else None
        except json.JSONDecodeError:
            hps = None
    if not isinstance(hps, dict):
        raise ValueError(f"{path!r} is neither a JSON object of hyper-parameters nor a train.txt whose first "
                         f"line is one")
    return glow_tf.GlowConfig.from_dict(hps, strict=False)


def load_model(args):
    """The Glow named by --logdir / --restore_path / --hps (see the module docstring)."""
    if args.graph is not None:  # OpenAI's frozen graph (glow_tf.original_graph)
        if args.logdir is not None or args.restore_path is not None:
            raise ValueError("--graph is a whole model: give it without --logdir / --restore_path")
        from glow_tf.original_graph import OriginalGraph  # noqa: PLC0415

        glow = OriginalGraph(args.graph)
        _log(args, f"loaded {glow!r}")
        return glow
    if args.logdir is None and args.restore_path is None:
        raise ValueError("no model given: pass --logdir RUN (a train.py run directory), --restore_path CHECKPOINT "
                         "or --graph FILE.pb")
    if args.hps is not None:
        config = read_original_hps(args.hps)
        prefix = args.restore_path or glow_tf.find_checkpoint(args.logdir, args.which)
        glow = glow_tf.load_original_checkpoint(prefix, config, polyak=args.polyak)
    else:
        try:
            glow, prefix = glow_tf.load_run(args.restore_path or args.logdir, args.which, polyak=args.polyak)
        except FileNotFoundError as e:
            if "config.json" not in str(e):
                raise
            raise FileNotFoundError(f"{e}; for a TF1 checkpoint of the original release pass its "
                                    f"hyper-parameters with --hps hps.json") from None
    c = glow.config
    _log(args, f"loaded {prefix}: {c.image_size}x{c.image_size}, {c.n_levels} levels x {c.depth} steps, "
               f"{c.n_bits_x}-bit{f', ycond n_y={c.n_y}' if c.ycond else ''}")
    return glow


# --- argument parsing helpers ---------------------------------------------------------------------------
def parse_labels(text):
    """`--y` text -> an int, or a list of ints for "3,1,4"."""
    if text is None:
        return None
    try:
        values = [int(v) for v in str(text).split(",")]
    except ValueError:
        raise ValueError(f"--y {text!r}: expected a class number or a comma-separated list of them") from None
    return values[0] if len(values) == 1 else values


def parse_temperatures(texts, n_levels):
    """`--temperature` values -> list of per-level tuples; "0.7" is one temperature for every level,
    "0.5,0.6,0.7" one per level (split levels first, top last)."""
    out = []
    for text in texts:
        parts = str(text).split(",")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"--temperature {text!r}: expected a number, or one number per level "
                             f"separated by commas") from None
        out.append(latents.check_temperature(values[0] if len(values) == 1 else values, n_levels))
    return out


def _labels_for(glow, y, n):
    """`--y` for n images: one class for all, or a list used in order and cycled; None if not given."""
    if y is None:
        return None
    if isinstance(y, list):
        y = [y[i % len(y)] for i in range(n)]
    try:
        return latents.check_labels(glow.config, np.asarray(y), n)
    except ValueError as e:
        raise ValueError(f"--y {y if not isinstance(y, list) else ','.join(map(str, y[:10]))}: {e}") from None


def _load_inputs(args, glow, paths):
    cfg = glow.config
    files = img.list_images(paths)
    return files, img.load_images(files, cfg.image_size, cfg.n_channels, resize=args.resize)


def _noise_kwargs(args):
    return {"noise": args.noise, "seed": args.noise_seed}


def _temperature_name(temps):
    return f"{temps[0]:g}" if len(set(temps)) == 1 else "-".join(f"{t:g}" for t in temps)


# --- commands -----------------------------------------------------------------------------------------
def cmd_sample(args, glow):
    """Samples at one or more temperatures; rows of the grid are temperatures, the columns the same
    unit noise, so column i shows sample i at every temperature."""
    cfg = glow.config
    temps = parse_temperatures(args.temperature, cfg.n_levels)
    if args.n < 1:
        raise ValueError(f"--n {args.n}: expected at least 1 sample")
    if args.n_cols is not None and len(temps) > 1:
        raise ValueError("--n_cols applies to one temperature; with several, each row is one temperature")
    seed = latents.random_seed() if args.seed is None else args.seed
    cols = (args.n_cols or img.default_columns(args.n)) if len(temps) == 1 else args.n
    if args.y is not None:
        y = _labels_for(glow, parse_labels(args.y), args.n)
    else:
        y = grid_labels(args.n, cols, cfg.n_y) if cfg.ycond else None
    eps = np.stack([glow.sample_latents(args.n, t, seed) for t in temps])  # [temperatures, n, D]
    images = glow.decode(eps.reshape(-1, cfg.n_dims), None if y is None else np.tile(y, len(temps)),
                         args.batch_size, progress=not args.quiet)
    img.save_grid(images, args.out, cols)
    if args.png_dir:
        for r, t in enumerate(temps):
            img.save_images(images[r * args.n:(r + 1) * args.n], args.png_dir, prefix=f"sample_T{_temperature_name(t)}")
    if args.npz:
        latents.save_latents(args.npz, cfg, eps.reshape(len(images), -1),
                             None if y is None else np.tile(y, len(temps)), images=images,
                             temperature=np.repeat(np.asarray(temps, np.float32), args.n, axis=0),
                             seed=np.int64(seed))
    _log(args, f"wrote {args.out}: {len(temps)} temperature(s) x {args.n} samples, seed {seed}"
               + (f", classes {'per --y' if args.y is not None else '(column % n_cols) % n_y'}" if cfg.ycond else ""))


def grid_labels(n, n_cols, n_y):
    """int32 [n]: the class of each cell of a sample grid, `(i % n_cols) % n_y`, so each column holds
    one class (the original's draw_samples: `[_y % n_y for _y in list(range(cols)) * rows]`)."""
    return (np.arange(n) % n_cols % n_y).astype(np.int32)


def cmd_encode(args, glow):
    files, images = _load_inputs(args, glow, args.images)
    y = _labels_for(glow, parse_labels(args.y), len(images))
    z = glow.encode(images, y, batch_size=args.batch_size, progress=not args.quiet, **_noise_kwargs(args))
    latents.save_latents(args.out, glow.config, z, y, files=np.asarray(files))
    _log(args, f"wrote {args.out}: latents [{len(z)}, {z.shape[1]}] of {len(files)} images")


def cmd_decode(args, glow):
    z, y_file = latents.load_latents(args.latents, glow.config)
    if args.y is not None:
        y = _labels_for(glow, parse_labels(args.y), len(z))
    else:
        y = y_file if glow.config.ycond else None
        if glow.config.ycond and y is None:
            raise ValueError(f"{args.latents!r} holds no labels y and the model is class-conditional: pass --y")
    x = glow.decode(z, y, args.batch_size, progress=not args.quiet)
    img.save_grid(x, args.out, args.n_cols)
    if args.png_dir:
        img.save_images(x, args.png_dir, prefix="decoded")
    _log(args, f"wrote {args.out}: {len(x)} decoded images")


def cmd_reconstruct(args, glow):
    cfg = glow.config
    files, images = _load_inputs(args, glow, args.images)
    y = _labels_for(glow, parse_labels(args.y), len(images))
    rec = glow.reconstruct(images, y, batch_size=args.batch_size, progress=not args.quiet, **_noise_kwargs(args))
    step = 2 ** (8 - cfg.n_bits_x)
    target = images // step * step  # what postprocess can give back: the bit-reduced input
    cols = args.n_cols or min(len(images), 10)
    rows = []
    for a in range(0, len(images), cols):
        pad = np.zeros((cols - len(images[a:a + cols]), *images.shape[1:]), np.uint8)
        rows += [images[a:a + cols], pad, rec[a:a + cols], pad]
    img.save_grid(np.concatenate(rows), args.out, n_cols=cols)
    if args.png_dir:
        img.save_images(rec, args.png_dir, prefix="reconstruction")
    diff = np.abs(rec.astype(int) - target.astype(int))
    _log(args, f"wrote {args.out} (rows: inputs, reconstructions); {100 * np.mean(diff == 0):.2f}% of sub-pixels "
               f"equal the {cfg.n_bits_x}-bit input, max |difference| {diff.max()}")


def cmd_interpolate(args, glow):
    files, images = _load_inputs(args, glow, [args.image1, args.image2])
    y = parse_labels(args.y)
    if isinstance(y, list):
        raise ValueError(f"--y {args.y!r}: interpolate takes one class for both images")
    if y is not None:
        _labels_for(glow, y, 1)
    frames = glow.interpolate(images[0], images[1], args.steps, y, batch_size=args.batch_size, **_noise_kwargs(args))
    img.save_grid(frames, args.out, n_cols=len(frames))
    if args.gif:
        img.save_gif(frames, args.gif, args.duration_ms, bounce=True)
    _log(args, f"wrote {args.out}{' and ' + args.gif if args.gif else ''}: {args.steps} steps from {files[0]} "
               f"to {files[1]}")


def _labelled_batches(args, glow):
    """(attribute names, iterator of (images, labels [B, A]), number of images or None) from --labels CSV,
    --tfrecords, or an official-layout CelebA folder (--celeba, or the run's own --data_dir)."""
    cfg = glow.config
    if args.labels:
        files, names, labels = directions.read_label_csv(args.labels, args.attr)
        root = args.image_root or os.path.dirname(os.path.abspath(args.labels))
        files = [f if os.path.isabs(f) else os.path.join(root, f) for f in files][:args.max_images]

        def batches():
            for a in range(0, len(files), args.batch_size):
                chunk = files[a:a + args.batch_size]
                yield img.load_images(chunk, cfg.image_size, cfg.n_channels, args.resize), labels[a:a + len(chunk)]
        return names, batches(), len(files)

    columns = directions.select_attributes(directions.CELEBA_ATTRIBUTES, args.attr, "the CelebA attributes")
    names = [directions.CELEBA_ATTRIBUTES[j] for j in columns]
    if not args.tfrecords:
        from data_loaders import celeba  # noqa: PLC0415

        folder = celeba.CelebAFolder(args.celeba or _run_celeba_dir(args))
        paths, labels = folder.split_files(args.split)
        paths, labels = paths[:args.max_images], labels[:args.max_images, columns]
        if cfg.n_channels != 3:
            raise ValueError(f"CelebA images are RGB; this model has {cfg.n_channels} channel(s)")
        data = folder.batches(paths, labels, cfg.image_size, args.batch_size)
        return names, data.as_numpy_iterator(), len(paths)
    want = (cfg.image_size, cfg.image_size, cfg.n_channels)

    def batches():
        records = itertools.islice(data_loaders.read_tfrecords(args.tfrecords, with_attr=True), args.max_images)
        while chunk := list(itertools.islice(records, args.batch_size)):
            for x, _, attr in chunk:
                if x.shape != want or len(attr) != len(directions.CELEBA_ATTRIBUTES):
                    raise ValueError(f"the TFRecords hold {'x'.join(map(str, x.shape))} images with {len(attr)} "
                                     f"attributes; the model expects {'x'.join(map(str, want))} and CelebA's 40 "
                                     f"(use the -rXX files of that size)")
            yield np.stack([x for x, _, _ in chunk]), np.stack([a for _, _, a in chunk])[:, columns]
    return names, batches(), None


def _run_celeba_dir(args):
    """The --data_dir a run was trained on with --problem celeba (train.txt's flags)."""
    from glow_tf.demo.startup import run_flags  # noqa: PLC0415

    flags = run_flags(args.logdir)
    if flags.get("problem") != "celeba" or not flags.get("data_dir"):
        raise ValueError("give the labelled images as --celeba DIR (CelebA's official layout), or as --labels "
                         "FILE.csv or as --tfrecords FILES (the run was not trained on a CelebA folder)")
    return flags["data_dir"]


def cmd_direction(args, glow):
    if sum(map(bool, (args.labels, args.tfrecords, args.celeba))) > 1:
        raise ValueError("give the labelled images one way: --celeba DIR, --labels FILE.csv or --tfrecords FILES")
    if args.out.endswith(".npy") and (args.labels or args.attr is not None and
                                      len(args.attr) != len(directions.CELEBA_ATTRIBUTES)):
        raise ValueError(f"--out {args.out!r}: a bare .npy is the demo's z_manipulate.npy, CelebA's 40 attributes in "
                         f"order; for other attributes write an .npz (names kept)")
    y = parse_labels(args.y)
    if isinstance(y, list):
        raise ValueError(f"--y {args.y!r}: direction takes one class for all images")
    names, batches, total = _labelled_batches(args, glow)
    means = directions.AttributeMeans(glow.config.n_dims, names)
    with tqdm(desc="encode", unit="img", total=total, disable=args.quiet) as bar:
        for images, labels in batches:
            labels_y = _labels_for(glow, y, len(images))
            z = glow.encode(images, labels_y, batch_size=args.batch_size, **_noise_kwargs(args))
            means.update(z, labels)
            bar.update(len(images))
    found = means.directions(args.scale)
    if args.out.endswith(".npy"):
        directions.save_z_manipulate(args.out, found)
    else:
        directions.save_directions(args.out, found, means.names, args.scale, means.n_with, means.n_without)
    for name, a, b in zip(means.names, means.n_with, means.n_without):
        _log(args, f"  {name}: {a} with, {b} without")
    _log(args, f"wrote {args.out}: {len(found)} direction(s), scale {args.scale:g}")


def parse_attributes(texts):
    """`--attr` values "NAME" or "NAME=WEIGHT" -> (names, float32 weights [A]; 1 when not given)."""
    names, weights = [], []
    for text in texts:
        name, sep, weight = str(text).rpartition("=")
        if not sep:
            name, weight = weight, "1"
        try:
            value = float(weight)
        except ValueError:
            raise ValueError(f"--attr {text!r}: expected NAME or NAME=WEIGHT with a number as the weight") from None
        if not name or not np.isfinite(value):
            raise ValueError(f"--attr {text!r}: expected NAME or NAME=WEIGHT with a finite weight")
        names.append(name)
        weights.append(value)
    return names, np.asarray(weights, np.float32)


def cmd_manipulate(args, glow):
    cfg = glow.config
    found = directions.load_directions(args.directions, cfg.n_dims)
    names, weights = parse_attributes(args.attr)
    direction = np.stack([directions.pick_direction(found, name) for name in names])  # [A, D]
    if args.alphas:
        alphas = np.asarray(args.alphas, np.float32)
    else:
        alphas = directions.range_alphas(args.points, args.range_scale)
    files, images = _load_inputs(args, glow, args.images)
    y = _labels_for(glow, parse_labels(args.y), len(images))
    z = glow.encode(images, y, batch_size=args.batch_size, **_noise_kwargs(args))
    # column k: z + alphas[k] * sum_a weights[a] * direction[a] (the demo's manipulate_all)
    rows = glow.manipulate(z, direction, alphas[:, None] * weights[None], y, args.batch_size)  # [N, K, H, W, C]
    img.save_grid(rows.reshape(-1, *rows.shape[2:]), args.out, n_cols=len(alphas))
    if args.gif:
        img.save_gif(np.stack([img.strip(rows[:, k]) for k in range(len(alphas))]), args.gif, args.duration_ms,
                     bounce=True)
    _log(args, f"wrote {args.out}{' and ' + args.gif if args.gif else ''}: {' + '.join(args.attr)} at alphas "
               f"{', '.join(f'{a:g}' for a in alphas)} for {len(files)} image(s)")


def cmd_serve(args, glow):
    from glow_tf.demo import serve  # noqa: PLC0415 (Flask, waitress and OpenCV only for this command)

    serve.run(args, glow)


def cmd_export(args, glow):
    from glow_tf.export import export_saved_model  # noqa: PLC0415

    if args.graph is not None:
        raise ValueError("export writes a SavedModel of a run of this project; --graph is already a frozen graph")
    export_saved_model(glow, args.out)
    _log(args, f"wrote SavedModel {args.out} (signatures encode, decode, sample)")


# --- the parser -----------------------------------------------------------------------------------------
def _model_parser():
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("model")
    g.add_argument("--logdir", help="a train.py run directory (config.json + checkpoints/)")
    g.add_argument("--restore_path", help="a checkpoint prefix (this project's, or the original's with --hps)")
    g.add_argument("--hps", help="hyper-parameters of an original TF1 checkpoint: hps JSON or its train.txt")
    g.add_argument("--graph", help="a frozen graph of the original release instead: OpenAI's CelebA-HQ "
                                   "graph_unoptimized.pb (scripts/download_celeba_hq_model.py; docs/faces.md)")
    g.add_argument("--which", choices=("latest", "best"), default="latest", help="checkpoint of --logdir")
    g.add_argument("--polyak", action="store_true", help="load the Polyak-averaged weights")
    g.add_argument("--batch_size", type=int, default=64, help="images per model call (default 64)")
    g.add_argument("--cpu", action="store_true", help="run on the CPU even if a GPU is visible")
    g.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    return p


def _encode_options(p, labels=True):
    p.add_argument("--resize", action="store_true",
                   help="centre-crop and resize images of another size (default: an error)")
    p.add_argument("--noise", choices=latents.NOISE_MODES, default="random",
                   help="dequantisation noise: random U(0,1/n_bins) as the original (default), or the bin "
                        "centre 0.5/n_bins (deterministic)")
    p.add_argument("--noise_seed", type=int, help="seed for the random noise (repeatable encodings)")
    if labels:
        p.add_argument("--y", help="class for a class-conditional model: one number, or one per image (comma list)")


def build_parser(prog=None):
    parser = argparse.ArgumentParser(prog=prog or "python -m glow_tf", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_model_parser()]
    # listed for the help; main() hands `train ...` to glow_tf.cli.train before this parser runs
    sub.add_parser("train", add_help=False, help="train a Glow: train.py's flags (see `train -h`)")

    p = sub.add_parser("sample", parents=common, help="sample at one or more temperatures (a PNG grid)")
    p.add_argument("--temperature", nargs="+", default=["0.7"], metavar="T",
                   help="one or more temperatures (one grid row each); 'a,b,...' gives one per level, "
                        "split levels first, top last (default 0.7)")
    p.add_argument("--n", type=int, default=64, help="samples per temperature (default 64)")
    p.add_argument("--seed", type=int, help="seed of the latent noise: the same seed gives the same grid")
    p.add_argument("--y", help="class(es) for a class-conditional model (default: grid column c gets class c %% n_y, "
                        "as the original's sample grids)")
    p.add_argument("--out", default="samples.png", help="the PNG grid (default samples.png)")
    p.add_argument("--n_cols", type=int, help="grid columns for one temperature (default ceil(sqrt(n)))")
    p.add_argument("--png_dir", help="also write every sample as a PNG in this folder")
    p.add_argument("--npz", help="also write images, latents (eps, eps_0..), temperature, y and seed to an .npz")

    p = sub.add_parser("encode", parents=common, help="images -> latents (.npz: eps [N, D], eps_0.., y, files)")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--out", required=True, help="the .npz to write")
    _encode_options(p)

    p = sub.add_parser("decode", parents=common, help="latents (.npz or .npy) -> images (a PNG grid)")
    p.add_argument("latents", help="an .npz of `encode`/`sample --npz`, or an .npy [N, D] (original z.npy)")
    p.add_argument("--out", required=True, help="the PNG grid")
    p.add_argument("--y", help="class(es), overriding the file's y")
    p.add_argument("--n_cols", type=int, help="grid columns (default ceil(sqrt(N)))")
    p.add_argument("--png_dir", help="also write every image as a PNG in this folder")

    p = sub.add_parser("reconstruct", parents=common, help="encode then decode images (a PNG grid)")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--out", required=True, help="the PNG grid: rows of inputs, then their reconstructions")
    p.add_argument("--n_cols", type=int, help="images per row (default min(N, 10))")
    p.add_argument("--png_dir", help="also write every reconstruction as a PNG in this folder")
    _encode_options(p)

    p = sub.add_parser("interpolate", parents=common, help="decode the line between two images' latents")
    p.add_argument("image1")
    p.add_argument("image2")
    p.add_argument("--steps", type=int, default=8, help="images on the path, endpoints included (default 8)")
    p.add_argument("--out", required=True, help="the PNG strip")
    p.add_argument("--gif", help="also an animated GIF (forwards, then back)")
    p.add_argument("--duration_ms", type=int, default=120, help="GIF frame duration (default 120)")
    _encode_options(p)

    p = sub.add_parser("direction", parents=common,
                       help="attribute directions from labelled images (mean latent with - without, x scale)")
    p.add_argument("--labels", help="CSV: a file-name column, then one column per attribute (±1 or 0/1)")
    p.add_argument("--image_root", help="folder of the CSV's file names (default: the CSV's folder)")
    p.add_argument("--tfrecords", nargs="+", help="CelebA TFRecords (files, globs or folders) with `attr`")
    p.add_argument("--celeba", help="CelebA in its official layout (img_align_celeba/, list_attr_celeba.txt; "
                                    "docs/faces.md); default with none of the three: the run's own --data_dir "
                                    "when it was trained with --problem celeba")
    p.add_argument("--split", choices=("train", "valid", "test", "all"), default="train",
                   help="the CelebA folder's images to use (default train)")
    p.add_argument("--attr", nargs="+", help="attributes (names or column numbers); default all")
    p.add_argument("--scale", type=float, default=directions.DEMO_SCALE,
                   help=f"multiplies the mean difference (the demo's {directions.DEMO_SCALE})")
    p.add_argument("--max_images", type=int, help="use at most this many images")
    p.add_argument("--out", required=True, help="the .npz of directions (names, counts); or an .npy: the bare "
                                                "float32 [40, D] of the demo's z_manipulate.npy")
    _encode_options(p)

    p = sub.add_parser("manipulate", parents=common,
                       help="move images along one or several attribute directions (a PNG strip)")
    p.add_argument("images", nargs="+", help="image files or folders (one row each)")
    p.add_argument("--directions", required=True, help="an .npz of `direction`, or the demo's z_manipulate.npy")
    p.add_argument("--attr", required=True, nargs="+", action="extend", metavar="NAME[=WEIGHT]",
                   help="direction names or indices, each with an optional weight (default 1); several move "
                        "along their weighted sum (the demo's manipulate_all); repeatable")
    p.add_argument("--alphas", nargs="+", type=float,
                   help="alphas to decode z + alpha * sum(weight * direction) at")
    p.add_argument("--points", type=int, default=5,
                   help="without --alphas: the demo's manipulate_range, alphas -1 .. 1 (default 5 points)")
    p.add_argument("--range_scale", type=float, default=1.0, help="manipulate_range's scale (default 1)")
    p.add_argument("--out", required=True, help="the PNG: one row per image, one column per alpha")
    p.add_argument("--gif", help="also an animated GIF over the alphas")
    p.add_argument("--duration_ms", type=int, default=120, help="GIF frame duration (default 120)")
    _encode_options(p)

    p = sub.add_parser("export", parents=common, help="a SavedModel with encode, decode and sample signatures")
    p.add_argument("--out", required=True, help="the SavedModel folder")

    p = sub.add_parser("serve", parents=common, help="the interactive demo: a web page and JSON API (docs/demo.md)")
    p.add_argument("--directions", help="an .npz of `direction`, or the demo's z_manipulate.npy (its sliders)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=5050, help="port (default 5050, as the original)")
    p.add_argument("--threads", type=int, default=4, help="request threads (default 4)")
    p.add_argument("--request_timeout", type=int, default=60,
                   help="seconds a client has to send a whole request, and an idle connection stays open (default 60)")
    p.add_argument("--connection_limit", type=int, default=100, help="open connections at most (default 100)")
    p.add_argument("--align", action="store_true",
                   help="tick the page's 'align face' box by default (RGB models of 64 px or more; face models "
                        "have it ticked anyway)")
    p.add_argument("--data_dir", help="the run's data, if moved (default: the run's --data_dir); its test images are "
                                      "the examples and, with labels, give the class directions")
    p.add_argument("--no_class_directions", action="store_true",
                   help="do not compute class directions from the run's labelled data")
    p.add_argument("--examples", help="a folder of photos to offer as the examples (the first 8 by name; aligned "
                                      "for face models); default: the run's held-out images, else samples")
    return parser


def main(argv=None, prog=None):
    """Runs one command; returns the exit status (2, with one `error:` line, for bad input)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:
        from glow_tf.cli import train  # noqa: PLC0415 (the training loop's modules, only for this command)

        return train.main(argv[1:])
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch_size {args.batch_size}: expected a positive integer")
    try:
        # --cpu: a device scope (not set_visible_devices, which fails once TF has started) places the
        # model's variables and every op on the CPU
        with tf.device("/CPU:0") if args.cpu else contextlib.nullcontext():
            glow = load_model(args)
            globals()[f"cmd_{args.command}"](args, glow)
    except (ValueError, FileNotFoundError) as e:
        print(f"{parser.prog} {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
