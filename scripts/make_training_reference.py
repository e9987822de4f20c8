"""Record the original openai/glow's data-dependent init and first training steps as a test fixture.

Runs the release's own training graph, `model.model(sess, hps, train_iterator, test_iterator,
data_init)` from a checkout given as `--original_dir` (its model.py, tfops.py and optim.py, imported
unchanged under `tf.compat.v1` with bench/original.py's stand-ins), and writes, for one config and
seed, a folder that tests/test_training_reference.py replays through glow_tf:

  hps.json          the config (the original's flag names), the training flags, the learning rates fed
  batches.npz       the init batch and each step's batch: images, labels, dequantisation noise
  before_init.npz   every model variable after global_variables_initializer (the starting weights)
  after_init.npz    every model variable after the data-dependent init; `init_stats`
  step_<k>.npz      after `m.train(lr)` number k: every model variable, the optimiser's `adam_t`,
                    `<var>/adam_m1`, `<var>/adam_m2`, the Polyak averages `<var>/ExponentialMovingAverage`,
                    and `stats` = the [loss, bits_x, bits_y, pred_loss] that m.train returned

`--preset` makes the hand-picked committed configs; `--random N` draws N small configs from
`--random_seed` (see random_settings) and writes one folder `rNN_<config>` each.

How the noise is fed: model.py draws the dequantisation noise inside its graph with
`tf.random_uniform(tf.shape(z), 0, 1./hps.n_bins)`. While the graph is built, model.py's `tf` is a
proxy of `tf.compat.v1` whose `random_uniform` returns a float32 placeholder instead (after checking
that the call asks for U(0, 1/n_bins) of the image's shape); every `sess.run` of the original gets
that placeholder fed with the recorded noise. `--lu` turns model.py's one-line LU switch the other
way (it ships with the full-matrix 1x1 convolution). The only other change is the order of the
training step: the original leaves its updates unordered, and `OrderedStep` adds the control
dependencies that make every run the same step (see there). No op of the original is changed.

The learning rates are the original train.py's warm-up, `lr * min(1, n_processed / (n_train *
epochs_warmup))` before each step, with `n_processed` growing by `n_batch_train` per step (one
worker, `--anchor_size` equal to the image size so that the local batch is `n_batch_train`);
`train_its = ceil(n_train / n_batch_train)` sets `beta2 = 1 - 1/(train_its * polyak_epochs)`.

Everything runs on one CPU thread from fixed seeds, and the .npz files are written without
timestamps, so a re-run with the same TensorFlow writes the same bytes.

  python scripts/make_training_reference.py --original_dir path/to/openai_glow --preset all \\
      --original_commit 91b2c577a5c110b2b38761fc56d81f7d87f077c1 \\
      --out tests/fixtures/original_training
  python scripts/make_training_reference.py --original_dir path/to/openai_glow --out path/to/my_case \\
      --image_size 16 --n_levels 2 --depth 3 --width 32 --flow_coupling 1 --learntop
  python scripts/make_training_reference.py --original_dir path/to/openai_glow --random 12 --random_seed 141 \\
      --original_commit 91b2c577a5c110b2b38761fc56d81f7d87f077c1 --out tests/fixtures/original_training
"""
import argparse
import io
import json
import math
import os
import subprocess
import sys
import zipfile

import numpy as np

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")

# The committed fixtures (tests/fixtures/original_training); `--preset NAME` or `--preset all`.
PRESETS = {
    "additive_reverse": dict(image_size=8, n_levels=2, depth=1, width=16, flow_permutation=0, flow_coupling=0,
                             n_batch_init=8, n_batch_train=4, n_train=16, lr=0.002, seed=1),
    "affine_invconv_learntop": dict(image_size=8, n_levels=2, depth=2, width=16, flow_permutation=2, flow_coupling=1,
                                    learntop=True, n_bits_x=5, n_batch_init=8, n_batch_train=4, n_train=20,
                                    polyak_epochs=2.0, lr=0.002, seed=2),
    "affine_lu_ycond": dict(image_size=8, n_levels=2, depth=1, width=16, flow_permutation=2, flow_coupling=1,
                            lu=True, learntop=True, ycond=True, n_y=4, weight_y=0.5, n_batch_init=8,
                            n_batch_train=4, n_train=16, weight_decay=0.999, lr=0.002, seed=3),
    "affine_invconv_32px_w96": dict(image_size=32, n_levels=1, depth=1, width=96, flow_permutation=2, flow_coupling=1,
                                    learntop=True, n_batch_init=4, n_batch_train=2, n_train=8, lr=0.002, seed=4),
}
DEFAULTS = dict(image_size=8, n_levels=2, depth=2, width=16, flow_permutation=2, flow_coupling=0, learntop=False,
                ycond=False, n_y=1, weight_y=0.0, n_bits_x=8, lu=False, n_batch_init=8, n_batch_train=4,
                n_train=16, epochs_warmup=1, lr=0.001, beta1=0.9, polyak_epochs=1.0, weight_decay=1.0, steps=3, seed=0)
HELP = dict(
    image_size="H = W of the images", n_levels="levels L", depth="flow steps per level K",
    width="hidden channels of the coupling network", flow_permutation="0 reverse, 2 invconv (1, shuffle, is seeded "
    "by Python's hash() of a scope name, so not repeatable)", flow_coupling="0 additive, 1 affine",
    learntop="learn the top prior", ycond="condition the top prior on the label", n_y="classes",
    weight_y="weight of the classifier loss (with --ycond)", n_bits_x="bits per colour channel kept",
    lu="the LU-decomposed 1x1 conv (with --flow_permutation 2)", n_batch_init="images of the data-dependent init",
    n_batch_train="images per training step", n_train="the original's epoch size: the warm-up is n_train * "
    "epochs_warmup images and train_its = ceil(n_train / n_batch_train) sets beta2",
    epochs_warmup="warm-up length in epochs", lr="base learning rate", beta1="Adamax's first-moment decay",
    polyak_epochs="beta2 = 1 - 1/(train_its * polyak_epochs)", weight_decay="multiplicative weight decay (1 = off)",
    steps="calls of m.train", seed="draws the images, labels, noise and the original's initial weights")
# `--random N`: small configs drawn from `--random_seed`, so that the test holds beyond hand-picked cases.
# A folder holds the weights 14 times, about 50 bytes a parameter; 3 levels need more (the top has 48
# channels: an invconv of 48 x 48, a split prior over 24 channels).
RANDOM_MAX_PARAMETERS = {1: 6500, 2: 5000, 3: 13000}
RANDOM_LEVELS = (1, 2, 3, 1, 2, 1)  # 3 levels with the reverse and the LU permutation in a set of 12


def n_parameters(s):
    """The model's parameter count for settings `s` (model.py's variables, LU or not: P, L, U and the
    full W all hold C^2), used to keep random fixtures small."""
    total, c = 0, 12  # channels after the first squeeze
    for level in range(s["n_levels"]):
        width, c_out = s["width"], c if s["flow_coupling"] == 1 else c // 2
        f = 9 * (c // 2 + 1) * width + 2 * width + width * width + 2 * width + 9 * (width + 1) * c_out + 2 * c_out
        total += s["depth"] * (2 * c + (c * c if s["flow_permutation"] == 2 else 0) + f)
        if level < s["n_levels"] - 1:
            total += 9 * (c // 2 + 1) * c + 2 * c  # the split prior's conv2d_zeros
            c *= 2
    if s["learntop"]:
        total += 9 * (2 * c + 1) * 2 * c + 4 * c
    if s["ycond"]:
        total += s["n_y"] * 2 * c + 4 * c + (c * s["n_y"] + 2 * s["n_y"] if s["weight_y"] > 0 else 0)
    return total


def random_settings(rng, i):
    """Config number `i` of a random set, drawn from `rng` (numpy RandomState): 1, 2, 3, 1, 2, 1 levels
    by turns (RANDOM_LEVELS), the permutation reverse, invconv, LU by turns (i // 3), additive and affine coupling
    alternating; at random 8 or 16 px, depth 1-3, width 4-16, learntop, ycond with or without the
    classifier loss, 3-8 bits, weight decay, Polyak length, batch sizes, epoch size and learning rate.
    The random part is drawn again until the model has at most RANDOM_MAX_PARAMETERS[levels] parameters."""
    permutation, lu = ((0, False), (2, False), (2, True))[(i // 3) % 3]
    while True:
        ycond = bool(rng.rand() < 0.4)
        s = dict(DEFAULTS, image_size=int(rng.choice([8, 16])), n_levels=RANDOM_LEVELS[i % len(RANDOM_LEVELS)],
                 depth=int(rng.randint(1, 4)),
                 width=int(rng.choice([4, 8, 12, 16])), flow_permutation=permutation, flow_coupling=i % 2, lu=lu,
                 learntop=bool(rng.rand() < 0.5), ycond=ycond, n_y=int(rng.randint(2, 6)) if ycond else 1,
                 weight_y=float(rng.choice([0.0, 0.5, 1.0])) if ycond else 0.0, n_bits_x=int(rng.randint(3, 9)),
                 n_batch_init=int(rng.choice([4, 8])), n_batch_train=int(rng.choice([2, 4])),
                 polyak_epochs=float(rng.choice([1.0, 2.0])), weight_decay=float(rng.choice([1.0, 0.999])),
                 lr=float(rng.choice([0.001, 0.002, 0.004])), seed=int(rng.randint(1000)))
        s["n_train"] = s["n_batch_train"] * int(rng.randint(2, 6))
        if n_parameters(s) <= RANDOM_MAX_PARAMETERS[s["n_levels"]]:
            return s


def describe(s):
    """A folder name for settings `s`, e.g. `r03_16px_L2K3w8_affine_lu_ycond_5bit`."""
    perm = "reverse" if s["flow_permutation"] == 0 else "lu" if s["lu"] else "invconv"
    parts = [f"{s['image_size']}px", f"L{s['n_levels']}K{s['depth']}w{s['width']}",
             "affine" if s["flow_coupling"] else "additive", perm]
    parts += [name for name in ("learntop", "ycond") if s[name]] + [f"{s['n_bits_x']}bit"]
    return "_".join(parts)


MODEL_KEYS = ("image_size", "n_levels", "depth", "width", "flow_permutation", "flow_coupling", "learntop", "ycond",
              "n_y", "weight_y", "n_bits_x", "lu")


def get_arguments(argv=None):
    class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
        pass

    parser = argparse.ArgumentParser(
        description="Run the original openai/glow's data-dependent init and first Adamax steps on fixed batches,\n"
                    "noise and warm-up learning rates; write them as a fixture folder for\n"
                    "tests/test_training_reference.py (format: tests/fixtures/original_training/README.md).",
        epilog="examples:\n" + __doc__.split("re-run with the same TensorFlow writes the same bytes.\n\n", 1)[1],
        formatter_class=Formatter)
    parser.add_argument("--original_dir", required=True,
                        help="a checkout of openai/glow's main branch (model.py, tfops.py, optim.py)")
    parser.add_argument("--out", required=True,
                        help="the fixture folder to write; with --preset all, the folder that gets one "
                             "sub-folder per preset")
    parser.add_argument("--original_commit",
                        help="the openai/glow commit of --original_dir, recorded in hps.json when the folder is "
                             "not a git work tree (e.g. made with git archive)")
    parser.add_argument("--preset", choices=[*PRESETS, "all"],
                        help="one of the committed fixtures' settings (the flags below are then ignored)")
    parser.add_argument("--random", type=int, default=0, metavar="N",
                        help="write N folders `rNN_<config>` of small configs drawn from --random_seed into --out "
                             "(the flags below are then ignored)")
    parser.add_argument("--random_seed", type=int, default=141, help="draws the configs of --random")
    for key, default in DEFAULTS.items():
        if isinstance(default, bool):
            parser.add_argument(f"--{key}", action="store_true", help=HELP[key])
        else:
            parser.add_argument(f"--{key}", type=type(default), default=default, help=HELP[key])
    args = parser.parse_args(argv)
    if args.random < 0 or (args.random and args.preset):
        parser.error(f"--random {args.random}: give a number >= 1, and not with --preset")
    if args.preset is None and args.flow_permutation not in (0, 2):
        parser.error(f"--flow_permutation {args.flow_permutation}: use 0 (reverse) or 2 (invconv); the original's "
                     f"shuffle (1) is seeded by Python's hash() of a scope name, so a fixture would not be repeatable")
    if args.preset is None and args.lu and args.flow_permutation != 2:
        parser.error("--lu needs --flow_permutation 2 (it is a form of the invertible 1x1 conv)")
    return args


def settings_of(args):
    """[(folder, settings)] to make."""
    if args.random:
        rng = np.random.RandomState(args.random_seed)
        drawn = [random_settings(rng, i) for i in range(args.random)]
        return [(os.path.join(args.out, f"r{i:02d}_{describe(s)}"), s) for i, s in enumerate(drawn)]
    if args.preset == "all":
        return [(os.path.join(args.out, name), {**DEFAULTS, **PRESETS[name]}) for name in PRESETS]
    if args.preset:
        return [(args.out, {**DEFAULTS, **PRESETS[args.preset]})]
    return [(args.out, {k: getattr(args, k) for k in DEFAULTS})]


def warmup_schedule(s):
    """The original train.py's learning rates for the first `steps` calls of m.train (one worker)."""
    lrs, n_processed = [], 0
    for _ in range(s["steps"]):
        lrs.append(s["lr"] * min(1., n_processed / (s["n_train"] * s["epochs_warmup"])))
        n_processed += s["n_batch_train"]
    return lrs


def save_npz(path, arrays):
    """np.savez_compressed without the zip entries' timestamps, so equal arrays give equal bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for key in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, buffer.getvalue())


class NoiseFedTF:
    """model.py's `tf` while it builds: tf.compat.v1, except that `random_uniform` (only used there for
    the dequantisation noise) returns `placeholder`, which every run then feeds."""

    def __init__(self, tf1, placeholder, n_bins):
        self._tf1, self._placeholder, self._high = tf1, placeholder, 1. / n_bins

    def __getattr__(self, name):
        return getattr(self._tf1, name)

    def random_uniform(self, shape, minval=0, maxval=None, **kwargs):
        if minval != 0 or maxval != self._high or kwargs:
            raise ValueError(f"model.py drew random_uniform(minval={minval!r}, maxval={maxval!r}, {kwargs}); "
                             f"only its dequantisation noise U(0, {self._high}) can be fed")
        static = shape.op.inputs[0].shape.as_list()  # shape is tf.shape(z)
        if static[1:] != self._placeholder.shape.as_list()[1:]:
            raise ValueError(f"noise of shape {static} asked for; the fed noise is {self._placeholder.shape}")
        return self._placeholder


class SlotRecorder:
    """optim.py's `tf`: records the variables its optimiser creates. optim.py passes their label
    (`'adam_t'`, `w.name + '_adam_m2'`) where `trainable` goes (the original's quirk 1); it stays there."""

    def __init__(self, tf1):
        self._tf1, self.labels = tf1, {}

    def __getattr__(self, name):
        return getattr(self._tf1, name)

    def Variable(self, initial_value, trainable=True, *args, **kwargs):  # noqa: N802 (tf.Variable)
        var = self._tf1.Variable(initial_value, trainable, *args, **kwargs)
        if isinstance(trainable, str):
            # "model/0/0/actnorm_center/b:0_adam_m2" -> "model/0/0/actnorm_center/b/adam_m2"
            self.labels[var.name] = trainable.replace(":0_", "/")
        return var


class FeedingSession:
    """The session model.model() gets: each run is fed `self.noise`, and the variables are read just
    before the data-dependent init pass (the one run fed the init images)."""

    def __init__(self, sess, placeholder, init_x, read):
        self._sess, self._placeholder, self._init_x, self._read = sess, placeholder, init_x, read
        self.noise, self.before_init, self.init_stats = None, None, None

    def __getattr__(self, name):
        return getattr(self._sess, name)

    def run(self, fetches, feed_dict=None, **kwargs):
        feed = dict(feed_dict or {})
        feed[self._placeholder] = self.noise
        is_init = any(v is self._init_x for v in feed.values())
        if is_init:
            self.before_init = self._read()
        out = self._sess.run(fetches, feed, **kwargs)
        if is_init:
            self.init_stats = np.asarray(out[1], np.float32)  # f_loss's (mean loss, global stats)
        return out


def make_fixture(original_dir, folder, s, original_commit=None):
    """Build the original's graph for settings `s`, run init + s["steps"] steps, write `folder`."""
    if BENCH not in sys.path:
        sys.path.insert(0, BENCH)
    import original  # noqa: PLC0415 (bench/original.py: the stand-ins)

    model, _, tf1 = original.import_original(original_dir, lu=s["lu"])
    n_bins = 2. ** s["n_bits_x"]
    size = s["image_size"]
    rng = np.random.RandomState(s["seed"])

    def batch(n):
        x = rng.randint(0, 256, size=(n, size, size, 3)).astype(np.uint8)
        y = rng.randint(0, s["n_y"], size=n).astype(np.int32)
        return x, y, rng.uniform(0, 1. / n_bins, size=(n, size, size, 3)).astype(np.float32)

    init = batch(s["n_batch_init"])
    steps = [batch(s["n_batch_train"]) for _ in range(s["steps"])]
    lrs = warmup_schedule(s)
    train_its = int(math.ceil(s["n_train"] / s["n_batch_train"]))

    hps = argparse.Namespace(
        **{k: s[k] for k in MODEL_KEYS if k != "lu"}, optimizer="adamax", lr=s["lr"], beta1=s["beta1"],
        polyak_epochs=s["polyak_epochs"], weight_decay=s["weight_decay"], train_its=train_its,
        gradient_checkpointing=0, direct_iterator=False, restore_path="", inference=False,
        n_batch_train=s["n_batch_train"], anchor_size=size)

    graph = tf1.Graph()
    with graph.as_default():
        tf1.set_random_seed(s["seed"])
        np.random.seed(s["seed"])  # the original's invconv W (np.linalg.qr of np.random.randn)
        noise = tf1.placeholder(tf1.float32, [None, size, size, 3], name="fed_noise")
        model.tf = NoiseFedTF(tf1, noise, n_bins)
        slots = SlotRecorder(tf1)
        model.optim.tf = slots
        OrderedStep(model.optim, tf1)
        sess = tf1.Session(graph=graph, config=tf1.ConfigProto(
            intra_op_parallelism_threads=1, inter_op_parallelism_threads=1, device_count={"CPU": 1}))

        def read():
            """{name: value} of every global variable: the model's, the optimiser's slots, the averages."""
            variables = tf1.global_variables()
            return {slots.labels.get(v.name, v.op.name): value for v, value in zip(variables, sess.run(variables))}

        feeding = FeedingSession(sess, noise, init[0], read)
        step_batch = iter(steps)

        def train_iterator():
            x, y, feeding.noise = next(step_batch)
            return x, y

        feeding.noise = init[2]
        m = model.model(feeding, hps, train_iterator, None, {"x": init[0], "y": init[1]})
        _check_optimizer_start(feeding.before_init)
        after_init = read()
        _check_optimizer_start(after_init, feeding.before_init)
        records = []
        for lr in lrs:
            stats = np.asarray(m.train(lr), np.float32)
            records.append({**read(), "stats": stats, "lr": np.float64(lr)})

    os.makedirs(folder, exist_ok=True)
    save_npz(os.path.join(folder, "batches.npz"), {
        "init_x": init[0], "init_y": init[1], "init_noise": init[2],
        **{f"{name}_{k + 1}": b[i] for k, b in enumerate(steps) for i, name in enumerate(("x", "y", "noise"))}})
    save_npz(os.path.join(folder, "before_init.npz"), _model_only(feeding.before_init))
    save_npz(os.path.join(folder, "after_init.npz"), {**_model_only(after_init), "init_stats": feeding.init_stats})
    for k, record in enumerate(records):
        save_npz(os.path.join(folder, f"step_{k + 1}.npz"), record)
    hps_json = {**{k: s[k] for k in MODEL_KEYS}, "n_bins": n_bins,
                **{k: s[k] for k in DEFAULTS if k not in MODEL_KEYS}, "anchor_size": size, "optimizer": "adamax",
                "train_its": train_its, "beta2": 1 - 1. / (train_its * s["polyak_epochs"]), "lrs": lrs,
                "original_commit": _commit(original_dir) or original_commit, "tensorflow": _tf_version()}
    with open(os.path.join(folder, "hps.json"), "w") as f:
        json.dump(hps_json, f, indent=1, sort_keys=True)
        f.write("\n")
    return records


class OrderedStep:
    """Fixes the order of the three unordered parts of the original's training step (optim.py).

    The original's variables are TF1 reference variables, updated in place, and its train_op groups
    updates that wait only for their own inputs, so each sess.run may order them differently:

    1. `w.assign(w_new)` waits for w's gradient only: the executor may update a weight while the
       gradients of earlier layers still read it (seen here: nonzero gradients of coupling layers
       behind a zero-initialised `l_last`);
    2. the Polyak average `ema.apply(params)` depends on nothing: it usually reads the weights at the
       start of the step, before their update, but not always;
    3. `t.assign_add(1)` and the read of t in the bias correction are unordered.

    Made definite here: every update waits for all gradients and for the Polyak average (so the
    average is of the weights before the step), and t is incremented after every weight update has
    read it (so the first step uses t = 1). Only control dependencies are added; no op is changed.
    """

    def __init__(self, optim, tf1):
        self._gates, self._polyak_op, self.train_op = [], None, None
        adamax, polyak = optim.adamax, optim.polyak

        def ordered_adamax(params, gs, **kwargs):
            with tf1.control_dependencies(gs):
                gated = [tf1.identity(g) for g in gs]
            self._gates = [g.op for g in gated]
            self._params = list(params)
            train_op, swap_op, ema = adamax(params, gated, **kwargs)
            self._order_t(train_op)
            return train_op, swap_op, ema

        def ordered_polyak(params, beta):
            avg_op, swap_op, ema = polyak(params, beta)
            for gate in self._gates:
                gate._add_control_input(avg_op)  # noqa: SLF001 (a control edge added to the built graph)
            self._polyak_op = avg_op
            return avg_op, swap_op, ema

        optim.adamax, optim.polyak = ordered_adamax, ordered_polyak

    def _order_t(self, train_op):
        ops = list(train_op.control_inputs)
        increments = [op for op in ops if op.type == "AssignAdd"]
        refs = {p.op.name for p in self._params}
        assigns = [op for op in ops if op.type == "Assign" and op.inputs[0].op.name in refs]
        if len(increments) != 1 or len(assigns) != len(self._params) or self._polyak_op not in ops:
            raise RuntimeError(f"optim.py's train_op is not the expected group of one t.assign_add, "
                               f"{len(self._params)} weight assigns and the Polyak op (found "
                               f"{len(increments)} AssignAdd, {len(assigns)} weight Assign)")
        for op in assigns:
            increments[0]._add_control_input(op)  # noqa: SLF001


def _model_only(values):
    return {k: v for k, v in values.items() if k.startswith("model/") and "/adam_m" not in k
            and not k.endswith("/ExponentialMovingAverage")}


def _check_optimizer_start(values, weights_from=None):
    """Before any step the optimiser holds t = 1, zero moments and averages equal to the starting
    weights (the values at global_variables_initializer, also after the init pass)."""
    weights_from = weights_from or values
    n_params = sum(1 for k in values if k.endswith("/adam_m2"))
    assert n_params and values["adam_t"] == 1.0, values.get("adam_t")
    for key, value in values.items():
        if key.endswith(("/adam_m1", "/adam_m2")):
            assert not np.any(value), key
        elif key.endswith("/ExponentialMovingAverage"):
            np.testing.assert_array_equal(value, weights_from[key[:-len("/ExponentialMovingAverage")]], err_msg=key)


def _commit(path):
    try:
        return subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def _tf_version():
    import tensorflow as tf  # noqa: PLC0415

    return tf.__version__


def main(argv=None):
    args = get_arguments(argv)
    for folder, s in settings_of(args):
        records = make_fixture(args.original_dir, folder, s, args.original_commit)
        print(f"{folder}: losses {[round(float(r['stats'][0]), 6) for r in records]}", flush=True)


if __name__ == "__main__":
    main()
