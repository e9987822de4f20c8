"""The port's training path against the original openai/glow's own init and first Adamax steps (see
tests/fixtures/original_training/README.md; made by scripts/make_training_reference.py).

Each fixture folder is replayed through what train.py runs: `Glow(config)` holding the original's
starting weights, `Glow.initialize` on the init batch, `Optimizer(..., beta2=beta2_from(train_its,
polyak_epochs))`, and `make_train_step` at the learning rates of `warmup_lr`, with the original's
batches and dequantisation noise passed explicitly. Every step starts from the original's state
before it (weights, moments; the averages by the port's rule), so that each compared value is one
computation from equal inputs. Compared: every variable after the init, the step statistics, every
weight, Adamax's `t`, m1, m2 and the Polyak averages after each step.

Each quantity may differ by a few float32 ulp of the scale of the computation that produced it (not
of the value, nor of its array): the tolerance functions below state the scale; docs/
training_reference.md argues each one, gives the observed ratios and what each planted bug changes.
`test_planted_bugs_are_caught` plants every bug of that list and asserts that the comparison fails.

Where the port differs from the original, the test states the difference:
- Polyak averages start at the weights after the data-dependent init (the original's start at the
  weights before it), and average each step's new weights (the original's, in the order its
  executor runs them, average the weights before the step: see the fixture README's "The order of the
  training step" and docs/training_reference.md, which proposes the fix);
- train.py's `--init_allreduce` (off by default) pools the init statistics over workers; these
  runs have one worker, where both are the original's init on the chief's batch.

Set GLOW_TRAINING_REFERENCE_DIR to a folder of further fixture folders (same format) to run them too.
"""
import contextlib
import json
import os
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

from glow_tf import Glow, GlowConfig, optim
from glow_tf.bijectors import actnorm, coupling, invertible_conv, networks, permutations, split
from glow_tf.checkpoint import original_variable_map
from glow_tf.distributed import Distributed
from glow_tf.training import make_train_step

BUNDLED = os.path.join(os.path.dirname(__file__), "fixtures", "original_training")
EMA = "/ExponentialMovingAverage"


def _folders(root):
    if not root or not os.path.isdir(root):
        return []
    return [os.path.join(root, d) for d in sorted(os.listdir(root))
            if os.path.exists(os.path.join(root, d, "hps.json"))]


FOLDERS = _folders(BUNDLED) + _folders(os.environ.get("GLOW_TRAINING_REFERENCE_DIR"))

# --- Tolerances: ulp counts of each computation's scale --------------------------------------------
# float32 round-off of two implementations that sum in different orders (the tap form, folded
# actnorms, gradient checkpointing, TF1's graph, oneDNN or Eigen). ULP = 2^-23, the spacing of float32
# numbers at 1. Each count leaves 3-6x room over the largest seen on the bundled fixtures (observed ratios and
# the planted bugs' in docs/training_reference.md).
ULP = float(np.finfo(np.float32).eps)
ULPS_INIT = 8  # actnorm statistics of the init pass (the inputs' own round-off comes along)
ULPS_LOSS = 8  # the losses in bits per dimension
ULPS_GRADIENT = 32  # one backward pass through the whole flow, relative to the array's largest |g|
ULPS_UPDATE = 4  # one Adamax update or Polyak average: a few roundings of its operands
LOGSCALE_FACTOR = 3.0  # actnorm stores logs / 3 (tfops.actnorm_scale's logscale_factor)
ADAMAX_EPSILON = 1e-8  # optim.py's m1 / (m2 + 1e-8)


def actnorm_bias_tolerance(b, logs):
    """The data-dependent init's `b = -mean(x)` (per channel, over batch and pixels): a sum of values
    of size |mean| + std, whose round-off is some ulp of that size whatever the result; a channel
    that arrives already centred has b = round-off around 0 at the scale of its std. std is read
    from the actnorm's own log-scale, `logs = log(1 / (std + 1e-6)) / 3`."""
    std = np.exp(-LOGSCALE_FACTOR * np.asarray(logs, np.float64))
    return ULPS_INIT * ULP * (np.abs(b) + std)


def actnorm_logs_tolerance(logs):
    """The init's `logs = log(1 / (std(x) + 1e-6)) / 3`: the log turns std's relative round-off
    (some ulp(1): std is a root mean square of the centred inputs) into an absolute error, plus the
    rounding of the result itself; true whatever std is, so an element near 0 (a channel that
    arrives standardised) gets the same allowance as any other."""
    return ULPS_INIT * ULP * (1.0 + np.abs(logs))


def loss_tolerance(bits):
    """A loss in bits/dim (bits_x, bits_y, their weighted sum; the init pass's bits_x): a mean over
    images of sums over dimensions, each term of the size of the per-dimension result (log n_bins,
    log N(eps), the log-dets) or of 1 bit; so some ulp of max(|bits|, 1). The classification error
    pred_loss is a count over the batch, exact for both unless a logit ties."""
    return ULPS_LOSS * ULP * np.maximum(np.abs(bits), 1.0)


def gradient_tolerance(m2):
    """Round-off of one gradient array: every element is the same contraction of the same
    activations and back-propagated signal, so the terms share one size, that of the array's largest
    |g|; an element near 0 is a cancellation among such terms. Adamax's m2 = max(beta2 m2, |g|) holds
    the largest |g| seen (decayed): its maximum over the array is the scale."""
    return ULPS_GRADIENT * ULP * float(np.max(m2, initial=0.0))


def moment_tolerance(m, grad_tol):
    """m1 = beta1 m1 + (1 - beta1) g and m2 = max(beta2 m2, |g|) from equal states: the gradient's
    round-off (times 1 - beta1 < 1, or passed through by the max), plus the update's own rounding."""
    return grad_tol + ULPS_UPDATE * ULP * np.abs(m)


def adamax_step(hps, k):
    """alpha_t = lr sqrt(1 - beta2^t) / (1 - beta1^t) of step k (t = k), the original's bias correction."""
    lr = hps["lrs"][k - 1]
    return lr * np.sqrt(1 - hps["beta2"] ** k) / (1 - hps["beta1"] ** k)


def weight_tolerance(w_before, w_after, alpha, m2, grad_tol):
    """A weight after one Adamax step `w = decay w - alpha m1 / (m2 + 1e-8)` from equal states: the
    rounding of the update (some ulp of |w| and of the step alpha, the lr-scaled update size), and
    the gradient's round-off carried through m1 / m2. A change dg of g moves m1 / (m2 + 1e-8) by at
    most 2 dg / (m2 + 1e-8), and never by more than 2 (|m1| <= m2): where |g| is itself round-off
    (m2 of an element near 0 beside a large array maximum), the step is ill-conditioned and may take
    any size up to alpha; elsewhere the allowance is a small fraction of alpha."""
    size = np.maximum(np.abs(w_before), np.abs(w_after)) + alpha
    return ULPS_UPDATE * ULP * size + alpha * np.minimum(2.0, 2.0 * grad_tol / (m2 + ADAMAX_EPSILON))


def average_tolerance(a, rate, w_tol):
    """A Polyak average `a = a - (1 - beta2)(a - w)` from an equal average: (1 - beta2) times the
    weight's tolerance, plus the rounding of the update."""
    return rate * w_tol + ULPS_UPDATE * ULP * np.abs(a)


# --- Comparing ---------------------------------------------------------------------------------------
def excess(ours, ref, allowed):
    """Largest |ours - ref| / allowed (0 where both are equal, inf where an exact match fails)."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    err = np.abs(ours - ref)
    allowed = np.broadcast_to(np.asarray(allowed, np.float64), err.shape)
    ratio = np.where(err == 0, 0.0, np.where(allowed > 0, err / np.where(allowed > 0, allowed, 1.0), np.inf))
    return float(np.max(ratio, initial=0.0))


def mismatch(ours, ref, allowed, what):
    """A message if an element of `ours` differs from the original's beyond `allowed`, else None."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    if ours.shape != ref.shape:
        return f"{what}: shape {ours.shape}, the original's {ref.shape}"
    allowed = np.broadcast_to(np.asarray(allowed, np.float64), ref.shape)
    err = np.abs(ours - ref)
    bad = ~(err <= allowed)
    if not bad.any():
        return None
    i = np.unravel_index(np.argmax(np.where(bad, err - allowed, -np.inf)), ref.shape) if ref.ndim else ()
    return (f"{what}: {int(bad.sum())} of {ref.size} elements differ beyond the tolerance; worst at "
            f"{tuple(map(int, i))}: ours {ours[i]:.9g}, the original's {ref[i]:.9g}, |diff| {err[i]:.3g} > "
            f"allowed {allowed[i]:.3g}")


def port_averages(hps, ref):
    """{weight: [a_1, a_2, ...]}: the port's Polyak rule on the original's weights, from the weights
    after the init, averaging each step's updated weights, `a_k = a_{k-1} - (1 - beta2)(a_{k-1} - w_k)`."""
    rate = np.float32(1) - np.float32(hps["beta2"])
    return {n[:-len(EMA)]: _averages(ref["after_init"][n[:-len(EMA)]], [s[n[:-len(EMA)]] for s in ref["steps"]], rate)
            for n in ref["steps"][0] if n.endswith(EMA)}


def comparisons(hps, ref, ours):
    """Every comparison of a replay: [(check, what, ours, the original's, allowed)], `check` naming
    the test that makes it: init, statistics, weights, moments, averages."""
    out = []
    init = ref["after_init"]
    for name, value in init.items():
        if name.endswith("/actnorm_center/b"):
            allowed = actnorm_bias_tolerance(value, init[name.replace("actnorm_center/b", "actnorm_scale/logs")])
        elif name.endswith("/actnorm_scale/logs"):
            allowed = actnorm_logs_tolerance(value)
        elif name == "init_stats":
            out.append(("init", "bits_x of the init pass", ours["init_bits_x"], value[1], loss_tolerance(value[1])))
            continue
        else:
            allowed = 0.0  # not touched by the init: the starting weights, copied
        out.append(("init", f"after the init: {name}", ours["after_init"][name], value, allowed))
    averages = port_averages(hps, ref)
    rate = float(np.float32(1) - np.float32(hps["beta2"]))
    for k, (mine, theirs) in enumerate(zip(ours["steps"], ref["steps"]), 1):
        before = init if k == 1 else ref["steps"][k - 2]
        out.append(("statistics", f"step {k}: [loss, bits_x, bits_y, pred_loss]", mine["stats"], theirs["stats"],
                    loss_tolerance(theirs["stats"])))
        alpha = adamax_step(hps, k)
        for name in init:
            if name == "init_stats":
                continue
            if name + "/adam_m2" not in theirs:  # not trained (the LU's P and sign_S): unchanged
                out.append(("weights", f"step {k}: {name}", mine[name], theirs[name], 0.0))
                continue
            m2 = theirs[name + "/adam_m2"]
            grad_tol = gradient_tolerance(m2)
            for moment in ("/adam_m1", "/adam_m2"):
                out.append(("moments", f"step {k}: {name}{moment}", mine[name + moment], theirs[name + moment],
                            moment_tolerance(theirs[name + moment], grad_tol)))
            w_tol = weight_tolerance(before[name], theirs[name], alpha, m2, grad_tol)
            out.append(("weights", f"step {k}: {name}", mine[name], theirs[name], w_tol))
            expected = averages[name][k - 1]
            out.append(("averages", f"port, step {k}: {name}{EMA}", mine[name + EMA], expected,
                        average_tolerance(expected, rate, w_tol)))
    return out


def failures(hps, ref, ours, check=None):
    """The mismatch messages of `comparisons` (of one `check`, or all)."""
    found = (mismatch(o, r, allowed, what) for c, what, o, r, allowed in comparisons(hps, ref, ours)
             if check is None or c == check)
    return [m for m in found if m]


# --- Replaying a fixture -----------------------------------------------------------------------------
def _load(folder, name):
    return dict(np.load(os.path.join(folder, name)))


def load_fixture(folder):
    """(hps, the original's arrays by stage)."""
    with open(os.path.join(folder, "hps.json")) as f:
        hps = json.load(f)
    ref = {"batches": _load(folder, "batches.npz"), "before_init": _load(folder, "before_init.npz"),
           "after_init": _load(folder, "after_init.npz"),
           "steps": [_load(folder, f"step_{k}.npz") for k in range(1, hps["steps"] + 1)]}
    return hps, ref


def replay(hps, ref):
    """Our values by stage: the fixture replayed as train.py runs it, each step from the original's
    state before it (weights, m1, m2 as recorded; averages by the port's rule on recorded weights;
    our own `t`)."""
    config = GlowConfig.from_dict(hps, strict=False)
    glow = Glow(config)
    glow.gradient_checkpointing = True  # train.py's default --gradient_checkpointing 1
    names = original_variable_map(glow)
    for name, var in names.items():
        var.assign(ref["before_init"][name])
    batches = ref["batches"]
    init_bits_x = glow.initialize(batches["init_x"], batches["init_y"] if config.ycond else None,
                                  noise=batches["init_noise"])
    ours = {"after_init": {n: v.numpy() for n, v in names.items()}, "init_bits_x": np.mean(init_bits_x),
            "steps": [], "lrs": [], "beta2": optim.beta2_from(hps["train_its"], hps["polyak_epochs"])}

    for name, var in names.items():  # the first step starts from the original's init
        var.assign(ref["after_init"][name])
    optimizer = optim.Optimizer(glow.trainable_variables, kind=hps["optimizer"], beta1=hps["beta1"],
                                beta2=ours["beta2"], weight_decay=hps["weight_decay"])
    slot_of = {var.ref(): i for i, var in enumerate(optimizer.params)}
    trained = {name: slot_of[var.ref()] for name, var in names.items() if var.ref() in slot_of}
    averages = port_averages(hps, ref)
    step = make_train_step(glow, optimizer, Distributed(use_horovod=False), seed=0)
    n_processed = 0
    for k in range(1, hps["steps"] + 1):
        if k > 1:
            state = ref["steps"][k - 2]
            for name, var in names.items():
                var.assign(state[name])
            for name, i in trained.items():
                optimizer.m1[i].assign(state[name + "/adam_m1"])
                optimizer.m2[i].assign(state[name + "/adam_m2"])
                optimizer.ema[i].assign(averages[name][k - 2])
        lr = optim.warmup_lr(hps["lr"], n_processed, hps["n_train"] * hps["epochs_warmup"])
        stats, _, finite = step(batches[f"x_{k}"], batches[f"y_{k}"], tf.constant(lr, tf.float32),
                                tf.constant(k - 1, tf.int64), noise=batches[f"noise_{k}"])
        assert bool(finite), f"step {k} was not finite"
        n_processed += hps["n_batch_train"]  # one worker, anchored batch = local batch here
        values = {"stats": stats.numpy(), "adam_t": optimizer.t.numpy()}
        for name, var in names.items():
            values[name] = var.numpy()
        for name, i in trained.items():
            values[name + "/adam_m1"] = optimizer.m1[i].numpy()
            values[name + "/adam_m2"] = optimizer.m2[i].numpy()
            values[name + EMA] = optimizer.ema[i].numpy()
        ours["steps"].append(values)
        ours["lrs"].append(lr)
    return ours


@pytest.fixture(scope="module", params=[(folder, form) for folder in FOLDERS for form in ("rule", "taps")],
                ids=lambda p: f"{os.path.basename(p[0])}-{p[1]}")
def replayed(request):
    """(hps, fixture arrays by stage, our values by stage), replayed with the convolutions in the test
    suite's fixed forms ("rule") and again with every convolution in the tap form, each 1x1 as a matmul
    ("taps"): whichever form the automatic choice picks, the same tolerances hold."""
    folder, form = request.param
    hps, ref = load_fixture(folder)
    with networks.conv_form(form):
        return hps, ref, replay(hps, ref)


def test_fixtures_were_found():
    assert FOLDERS, f"no fixture folders (with hps.json) in {BUNDLED!r} or $GLOW_TRAINING_REFERENCE_DIR"


def test_learning_rates_and_beta2_are_the_originals(replayed):
    """warmup_lr gives the rates the original's train.py fed (0 first), beta2_from its beta2."""
    hps, ref, ours = replayed
    assert ours["lrs"] == hps["lrs"]
    assert [float(s["lr"]) for s in ref["steps"]] == hps["lrs"] and hps["lrs"][0] == 0.0
    assert ours["beta2"] == hps["beta2"]


def test_data_dependent_init(replayed):
    """Every variable after the init pass (the actnorms set, everything else untouched) and its loss."""
    assert not failures(*replayed, "init")


def test_step_statistics(replayed):
    """[loss, bits_x, bits_y, pred_loss] of each step, computed before its update, as m.train returns them."""
    assert not failures(*replayed, "statistics")


def test_weights_after_each_step(replayed):
    assert not failures(*replayed, "weights")


def test_adamax_state_after_each_step(replayed):
    """The step counter t (1 before the first step) and the moments m1, m2 of every parameter."""
    hps, ref, ours = replayed
    for k, (mine, theirs) in enumerate(zip(ours["steps"], ref["steps"]), 1):
        assert mine["adam_t"] == theirs["adam_t"] == k + 1
        moments = [n for n in theirs if n.endswith(("/adam_m1", "/adam_m2"))]
        assert moments and sorted(moments) == sorted(n for n in mine if n.endswith(("/adam_m1", "/adam_m2")))
    assert not failures(*replayed, "moments")


def _averages(start, weights, rate):
    """EMA with tf.train.ExponentialMovingAverage's update `a -= (a - w) * (1 - decay)`, from `start`."""
    out, a = [], np.asarray(start, np.float32)
    for w in weights:
        a = a - (a - np.asarray(w, np.float32)) * rate
        out.append(a)
    return out


def test_polyak_averages_of_the_original(replayed):
    """The fixture itself: the original's averages start at the weights before the init and take
    each step's weights before the update: a_k = a_{k-1} - (1 - beta2) (a_{k-1} - w_{k-1})."""
    hps, ref, ours = replayed
    rate = np.float32(1) - np.float32(hps["beta2"])
    problems = []
    for name in ref["steps"][0]:
        if name.endswith(EMA):
            w = name[:-len(EMA)]
            weights = [ref["after_init"][w]] + [s[w] for s in ref["steps"][:-1]]
            for k, expected in enumerate(_averages(ref["before_init"][w], weights, rate), 1):
                problems.append(mismatch(ref["steps"][k - 1][name], expected, ULPS_UPDATE * ULP * np.abs(expected),
                                         f"original, step {k}: {name}"))
    assert not [p for p in problems if p]


def test_polyak_averages_of_the_port(replayed):
    """Ours, by the port's rule applied to the original's weights: start after the init, average
    each step's updated weights, a_k = a_{k-1} - (1 - beta2) (a_{k-1} - w_k). The difference to the
    original's a_k is beta2^k (w_after_init - w_before_init) (nonzero for actnorms only) plus
    (1 - beta2) sum_j beta2^(k-j) (w_j - w_{j-1})."""
    hps, ref, ours = replayed
    averaged = [n for n in ours["steps"][0] if n.endswith(EMA)]
    assert sorted(averaged) == sorted(n for n in ref["steps"][0] if n.endswith(EMA))
    assert not failures(*replayed, "averages")


def test_the_tap_form_takes_part_at_32px():
    """The 32x32 fixture's coupling output layer (width 96 -> 12 channels at 16x16) runs in
    glow_tf.bijectors.networks' tap form at that fixture's batch sizes, so the replay covers it."""
    folders = [f for f in FOLDERS if os.path.basename(f) == "affine_invconv_32px_w96"]
    if not folders:
        pytest.skip("the bundled 32x32 fixture is not there")
    with open(os.path.join(folders[0], "hps.json")) as f:
        hps = json.load(f)
    glow = Glow(GlowConfig.from_dict(hps, strict=False))
    l_last = glow.levels[0].steps[0].coupling.f1.l_last
    h = hps["image_size"] // 2
    for batch in (hps["n_batch_init"], hps["n_batch_train"]):
        assert networks.tap_form_is_faster(tf.zeros([batch, h, h, hps["width"]]), l_last.W), batch



def test_random_fixtures_are_the_generators_draw():
    """The bundled `rNN_*` folders are what `make_training_reference.py --random 12` draws (default
    seed): same folder names, and hps.json holds the drawn settings."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts",
                        "make_training_reference.py")
    spec = importlib.util.spec_from_file_location("make_training_reference", path)
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    drawn = generator.settings_of(generator.get_arguments(["--original_dir", ".", "--out", BUNDLED, "--random", "12"]))
    assert sorted(folder for folder, _ in drawn) == sorted(f for f in _folders(BUNDLED) if "/r" in f[len(BUNDLED):])
    for folder, settings in drawn:
        with open(os.path.join(folder, "hps.json")) as f:
            hps = json.load(f)
        assert {k: hps[k] for k in settings} == settings, folder
        assert generator.n_parameters(settings) <= generator.RANDOM_MAX_PARAMETERS[settings["n_levels"]]

# --- Planted bugs ------------------------------------------------------------------------------------
def _patch(owner, name, replacement):
    """mock.patch of owner.name by `replacement`; a function is run by tf.function as written (autograph
    cannot read the source of a lambda)."""
    if callable(replacement):
        replacement = tf.autograph.experimental.do_not_convert(replacement)
    return mock.patch.object(owner, name, replacement)


def _wrap(owner, name, make):
    """_patch of owner.name by make(the original attribute)."""
    return _patch(owner, name, make(getattr(owner, name)))


def _unbiased_actnorm_init(initialize):
    def planted(self, x, scale=1.0):
        n = float(np.prod(x.shape[:3]))
        initialize(self, x, scale)
        self.logs_var.assign_add(tf.fill(self.logs_var.shape, np.float32(-0.5 * np.log(n / (n - 1)) / 3)))
    return planted


def _post_relu_actnorm_init(call):
    def planted(self, x):
        if actnorm.ddi_active() and not bool(self.actnorm.initialized):
            self.actnorm.initialize(tf.nn.relu(networks.conv(x, self.W)))
        return call(self, x)
    return planted


def _update_with(extra_t=0.0, lr_factor=None, average_before=False, decay_after=False):
    """Optimizer._update with one planted bug: the bias correction at t + extra_t; lr divided by the
    bias correction (so none is applied); the Polyak average of the weights before the update; the
    weight decay applied after the update (decay (w - alpha delta))."""
    def make(update):
        def planted(self, grads, lr):
            if lr_factor:
                lr = lr / lr_factor(self)
            old_w = [w.read_value() for w in self.params]
            old_a = [a.read_value() for a in self.ema]
            self.t.assign_add(extra_t)
            update(self, grads, lr)
            self.t.assign_sub(extra_t)
            for i, w in enumerate(self.params):
                if decay_after:
                    w.assign(w + (1 - self.weight_decay) * (self.weight_decay * old_w[i] - w))
                if average_before:
                    self.ema[i].assign(old_a[i] - (old_a[i] - old_w[i]) * self._ema_rate)
        return planted
    return make


def _bias_correction(opt):
    t = opt.t.read_value()
    return tf.sqrt(1.0 - tf.pow(opt.beta2, t)) / (1.0 - tf.pow(opt.beta1, t))


# (name, bundled fixture, the patch, the checks that must fail). Each is a bug a port could have; the
# fixture is the smallest that has the layer or setting concerned.
PLANTED = [
    ("actnorm init scale from the unbiased variance (n - 1)", "r00_16px_L1K3w4_additive_reverse_4bit",
     lambda: _wrap(actnorm.ActNorm, "initialize", _unbiased_actnorm_init), {"init"}),
    ("actnorm inside f initialised from post-ReLU statistics", "r03_8px_L1K2w4_affine_invconv_6bit",
     lambda: _wrap(networks.Conv2D, "__call__", _post_relu_actnorm_init), {"init"}),
    ("dequantisation noise added twice", "r00_16px_L1K3w4_additive_reverse_4bit",
     lambda: _wrap(Glow, "dequantize", lambda f: lambda self, x, noise=None, seed=None:
                   f(self, x, noise, seed) + noise),
     {"init", "statistics"}),
    ("actnorm log-det dropped", "r00_16px_L1K3w4_additive_reverse_4bit",
     lambda: _patch(actnorm.ActNorm, "_log_det", lambda self, x: tf.zeros([])),
     {"init", "statistics", "moments"}),
    ("invconv log|det W| dropped (0 at an orthogonal init: only gradients show it)",
     "r03_8px_L1K2w4_affine_invconv_6bit",
     lambda: _patch(invertible_conv.InvertibleConv1x1, "_log_det", lambda self, x: tf.zeros([])),
     {"moments"}),
    ("LU log-det sum(log_S) dropped (0 at init, as log|det W|)", "r06_8px_L1K3w4_additive_lu_3bit",
     lambda: _patch(invertible_conv.InvertibleConv1x1LU, "_log_det", lambda self, x: tf.zeros([])),
     {"statistics", "moments"}),
    ("affine coupling's log-det dropped", "r03_8px_L1K2w4_affine_invconv_6bit",
     lambda: _wrap(coupling.AffineCoupling, "encode", lambda f: lambda self, x: (f(self, x)[0], 0.0)),
     {"init", "statistics", "moments"}),
    ("affine coupling's shift and scale read the other way round (equal at init: the steps show it)",
     "r03_8px_L1K2w4_affine_invconv_6bit",
     lambda: _wrap(coupling, "interleaved_halves", lambda f: lambda h: f(h)[::-1]),
     {"statistics", "moments", "weights", "averages"}),
    ("split prior read as contiguous halves (0 at init: only gradients show it)", "additive_reverse",
     lambda: _patch(split.Split, "prior", lambda self, z1: tf.split(self.conv(z1), 2, axis=-1)),
     {"moments"}),
    ("reverse permutation as a swap of halves", "additive_reverse",
     lambda: _patch(permutations.ReverseChannels, "encode",
                               lambda self, x: (tf.concat(tf.split(x, 2, axis=-1)[::-1], axis=-1), 0.0)),
     {"init", "statistics"}),
    ("invconv applied with W transposed", "r03_8px_L1K2w4_affine_invconv_6bit",
     lambda: _wrap(invertible_conv, "_channel_matmul", lambda f: lambda x, w: f(x, tf.transpose(w))),
     {"init", "statistics"}),
    ("Adamax epsilon 1e-6 for 1e-8", "r00_16px_L1K3w4_additive_reverse_4bit",
     lambda: _patch(optim, "EPSILON", 1e-6), {"weights"}),
    ("beta2 off by one step (train_its + 1)", "additive_reverse",
     lambda: _wrap(optim, "beta2_from", lambda f: lambda its, epochs=1.0: f(its + 1, epochs)), {"moments", "weights"}),
    ("bias correction at t + 1 (t read after its increment)", "additive_reverse",
     lambda: _wrap(optim.Optimizer, "_update", _update_with(extra_t=1.0)), {"weights"}),
    ("bias correction dropped (alpha_t = lr)", "additive_reverse",
     lambda: _wrap(optim.Optimizer, "_update", _update_with(lr_factor=_bias_correction)), {"weights"}),
    ("Polyak average of the weights before the update", "additive_reverse",
     lambda: _wrap(optim.Optimizer, "_update", _update_with(average_before=True)), {"averages"}),
    ("Polyak decay beta1 for beta2", "additive_reverse",
     lambda: _wrap(optim.Optimizer, "__init__", lambda f: lambda self, *a, **kw: (
         f(self, *a, **kw), setattr(self, "_ema_rate", 1.0 - self.beta1))[0]), {"averages"}),
    ("weight decay applied after the update", "r05_16px_L1K1w4_affine_invconv_ycond_7bit",
     lambda: _wrap(optim.Optimizer, "_update", _update_with(decay_after=True)), {"weights"}),
    ("warm-up over half the images (epochs_warmup misread)", "additive_reverse",
     lambda: _wrap(optim, "warmup_lr", lambda f: lambda lr, n, total: f(lr, n, total / 2)), {"weights"}),
]


def planted_bug_results(bug):
    """{check: largest |ours - original| / allowed} of a replay with `bug` (a PLANTED entry) planted."""
    name, fixture, patch, _ = bug
    folder = os.path.join(BUNDLED, fixture)
    if not os.path.isdir(folder):
        pytest.skip(f"the bundled fixture {fixture} is not there")
    hps, ref = load_fixture(folder)
    with contextlib.ExitStack() as stack:
        stack.enter_context(patch())
        ours = replay(hps, ref)
    worst = {}
    for check, _, o, r, allowed in comparisons(hps, ref, ours):
        worst[check] = max(worst.get(check, 0.0), excess(o, r, allowed))
    return worst


@pytest.mark.parametrize("bug", PLANTED, ids=[b[0] for b in PLANTED])
def test_planted_bugs_are_caught(bug):
    """Each bug of PLANTED, planted into glow_tf for one replay, fails the checks it must fail (some
    element beyond its tolerance: a ratio > 1)."""
    worst = planted_bug_results(bug)
    caught = {check for check, ratio in worst.items() if ratio > 1}
    assert bug[3] <= caught, f"{bug[0]}: largest |diff| / allowed by check {worst}"


def main():
    """`python -m tests.test_training_reference` prints the figures of docs/training_reference.md: per
    fixture folder, the largest |ours - original| / allowed of each check (and where); per planted bug,
    the same on its fixture."""
    for folder in FOLDERS:
        hps, ref = load_fixture(folder)
        ours = replay(hps, ref)
        worst = {}
        for check, what, o, r, allowed in comparisons(hps, ref, ours):
            worst[check] = max(worst.get(check, (0.0, "")), (excess(o, r, allowed), what))
        print(os.path.basename(folder), "  ".join(f"{c} {v:.3f} ({w})" for c, (v, w) in worst.items()), flush=True)
    for bug in PLANTED:
        worst = planted_bug_results(bug)
        print(f"{bug[0]} [{bug[1]}]:", "  ".join(f"{c} {v:.3g}" for c, v in worst.items()), flush=True)


if __name__ == "__main__":
    main()
