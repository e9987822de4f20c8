"""openai Glow's Adamax / Adam with Polyak averaging, and its learning-rate warm-up; ports openai/glow
optim.py (adamax, adam, polyak) and the schedule in train.py:train."""

import contextlib
import math
import numbers

import numpy as np
import tensorflow as tf

__all__ = ["Optimizer", "beta2_from", "warmup_lr"]

KINDS = ("adamax", "adam")
EPSILON = 1e-8


def beta2_from(train_its, polyak_epochs=1.0):
    """`beta2 = 1 - 1/(train_its * polyak_epochs)` (openai optim.py, every optimiser).

    The same value is Adam's second-moment decay and the Polyak EMA decay, so it depends on n_train, the
    number of workers and n_batch_train through `train_its`. E.g. CIFAR-10 on 8 GPUs: train_its=98,
    beta2 = 1 - 1/98.
    """
    if isinstance(train_its, bool) or not isinstance(train_its, numbers.Integral) or train_its < 1:
        raise ValueError(f"train_its must be a positive integer, got {train_its!r}")
    if (isinstance(polyak_epochs, bool) or not isinstance(polyak_epochs, numbers.Real)
            or not math.isfinite(polyak_epochs) or polyak_epochs <= 0):
        raise ValueError(f"polyak_epochs must be a positive finite number, got {polyak_epochs!r}")
    if train_its * polyak_epochs < 1:
        raise ValueError(
            f"train_its * polyak_epochs must be >= 1 so that beta2 = 1 - 1/(train_its*polyak_epochs) is in "
            f"[0, 1), got {train_its} * {polyak_epochs} = {train_its * polyak_epochs}")
    return 1.0 - 1.0 / (train_its * polyak_epochs)


def warmup_lr(lr, n_processed, n_warmup_images):
    """`lr * min(1, n_processed / n_warmup_images)`: openai train.py's linear warm-up.

    Computed before each step from the images processed so far, so the first step has lr = 0. The
    original passes `n_warmup_images = n_train * epochs_warmup` and counts `n_processed` in anchored images
    (`n_batch_train * n_workers` per step, not the local batch). After the warm-up the rate is constant.
    `n_warmup_images = 0` means no warm-up (the original divides by zero there).
    """
    for name, value in (("lr", lr), ("n_processed", n_processed), ("n_warmup_images", n_warmup_images)):
        if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
                or value < 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if n_warmup_images == 0:
        return float(lr)
    return lr * min(1.0, n_processed / n_warmup_images)


class Optimizer(tf.Module):
    """openai's Adamax (default) or Adam with multiplicative weight decay and Polyak averaging.

    Ports openai optim.py:adamax and optim.py:adam (with polyak). One `apply(grads, lr)` is, with t the
    step counter before its increment (the first update uses t = 1):

        alpha_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)     # Adam's correction, kept for Adamax too
        m1 = beta1 * m1 + (1 - beta1) * g                    # m1 = g when beta1 = 0 (no m1 slot)
        adamax: m2 = max(beta2 * m2, |g|);               delta = m1 / (m2 + 1e-8)
        adam:   m2 = beta2 * m2 + (1 - beta2) * g^2;     delta = m1 / (sqrt(m2) + 1e-8)
        w = weight_decay * w - alpha_t * delta
        ema -= (1 - beta2) * (ema - w)                       # of the updated w
        t += 1

    with the new m1 and m2 in delta. The Polyak average is tf.train.ExponentialMovingAverage(beta2,
    zero_debias=True) of the original, which does not debias averages of variables. Gradients must already
    be averaged over workers (the original's `allreduce_mean` is done by the training loop here); there is
    no clipping. The original's `adam2` ("doesn't seem to work") is not ported.

    All state is non-trainable tf.Variables (`t`, `m1`, `m2`, `ema`), so
    `tf.train.Checkpoint(optimizer=opt)` resumes exactly; the original made `t` and the moments trainable by
    accident (docs/original.md#q1), with no effect. `apply` works eagerly, under tf.function and with jit_compile.

    Differences from the original: its shadows start at the parameters' initializer values (before the
    data-dependent init), ours at the parameters' values when the Optimizer is constructed, so construct it
    after the data-dependent init (and after any broadcast or restore of the parameters) to get averages of
    trained weights from the first step. The original leaves the read of `t` and its increment, and the EMA
    update and the parameter assignment, unordered (docs/original.md#q3); here t is read before its increment and the
    EMA follows the new weights.

    Args:
      params: the tf.Variables to train, in the order `grads` will have (not saved with the optimiser).
      kind: "adamax" (the original's default `--optimizer`) or "adam".
      beta1: first-moment decay, in [0, 1) (`--beta1`, default 0.9).
      beta2: second-moment and Polyak decay, in [0, 1); see `beta2_from`.
      weight_decay: multiplicative decay of the weights, > 0 (`--weight_decay`, default 1.0 = off).
      polyak: keep the Polyak averages `ema` (the original always does).
      name: name of the module.
    """

    # The parameters belong to the model: keep them out of this module's variables and checkpoint.
    _TF_MODULE_IGNORED_PROPERTIES = frozenset(("_params",)) | tf.Module._TF_MODULE_IGNORED_PROPERTIES

    def __init__(self, params, kind="adamax", *, beta1=0.9, beta2, weight_decay=1.0, polyak=True,
                 name="optimizer"):
        super().__init__(name=name)
        if kind not in KINDS:
            note = " (openai's adam2 'doesn't seem to work' and is not ported)" if kind == "adam2" else ""
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}{note}")
        _check_unit_interval("beta1", beta1)
        _check_unit_interval("beta2", beta2)
        if (isinstance(weight_decay, bool) or not isinstance(weight_decay, numbers.Real)
                or not math.isfinite(weight_decay) or weight_decay <= 0):
            raise ValueError(f"weight_decay must be a finite number > 0 (1.0 = off), got {weight_decay!r}")
        params = _check_params(params)

        self.kind = kind
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        self.weight_decay = float(weight_decay)
        self.polyak = bool(polyak)
        # The EMA's 1 - decay is a float32 subtraction in TF1 (decay is converted to a tensor first).
        self._ema_rate = float(np.float32(1.0) - np.float32(beta2))
        self._params = self._no_dependency(params)

        with self.name_scope:
            self.t = tf.Variable(1.0, dtype=tf.float32, trainable=False, name="t")
            self.m1 = [_slot(p, "adam_m1", tf.zeros_like(p)) for p in params] if self.beta1 > 0 else []
            self.m2 = [_slot(p, "adam_m2", tf.zeros_like(p)) for p in params]
            self.ema = ([_slot(p, "ExponentialMovingAverage", p.read_value()) for p in params]
                        if self.polyak else [])

    @property
    def params(self):
        """The trained variables, in the order of `grads`."""
        return self._params

    @tf.autograph.experimental.do_not_convert
    def apply(self, grads, lr, skip=None):
        """One update of every parameter from `grads` (already worker-averaged) at learning rate `lr`.

        `lr` is a float or a scalar tensor (e.g. from `warmup_lr`). `skip` (a bool or a scalar bool tensor)
        skips the whole step when true: parameters, moments, `t` and averages stay bit-identical.
        """
        grads = self._check_grads(grads)
        lr = tf.convert_to_tensor(lr, dtype=tf.float32)
        if lr.shape.rank != 0:
            raise ValueError(f"lr must be a scalar, got shape {lr.shape}")
        if skip is None:
            self._update(grads, lr)
        elif isinstance(skip, (bool, np.bool_)):
            if not skip:
                self._update(grads, lr)
        else:
            skip = tf.convert_to_tensor(skip)
            if skip.dtype != tf.bool or skip.shape.rank != 0:
                raise ValueError(
                    f"skip must be a scalar bool, got dtype {skip.dtype.name} shape {skip.shape}")
            tf.cond(skip, lambda: None, lambda: self._update(grads, lr))

    @tf.autograph.experimental.do_not_convert
    def _update(self, grads, lr):
        beta1, beta2 = self.beta1, self.beta2
        # Python-float coefficients become float32 constants, as in the original; 1 - beta is taken in
        # float64 first, as the original's `(1. - hps.beta1)` is.
        t = self.t.read_value()
        alpha_t = lr * tf.sqrt(1.0 - tf.pow(beta2, t)) / (1.0 - tf.pow(beta1, t))
        for i, (w, g) in enumerate(zip(self._params, grads)):
            if beta1 > 0:
                m1_new = beta1 * self.m1[i] + (1.0 - beta1) * g
                self.m1[i].assign(m1_new, read_value=False)
            else:
                m1_new = g
            if self.kind == "adamax":
                m2_new = tf.maximum(beta2 * self.m2[i], tf.abs(g))
                delta = m1_new / (m2_new + EPSILON)
            else:
                m2_new = beta2 * self.m2[i] + (1.0 - beta2) * tf.square(g)
                delta = m1_new / (tf.sqrt(m2_new) + EPSILON)
            self.m2[i].assign(m2_new, read_value=False)
            # 1.0 * w == w exactly: skip the multiply when weight decay is off (the default).
            decayed = w if self.weight_decay == 1.0 else self.weight_decay * w
            w_new = decayed - alpha_t * delta
            w.assign(w_new, read_value=False)
            if self.polyak:
                self.ema[i].assign_sub((self.ema[i] - w_new) * self._ema_rate, read_value=False)
        self.t.assign_add(1.0, read_value=False)

    @tf.autograph.experimental.do_not_convert
    def swap_ema(self):
        """Swap every parameter with its Polyak average in place (openai optim.py:polyak's swap_op).

        The original never calls it in training: evaluation, samples and checkpoints use the raw weights.
        """
        if not self.polyak:
            raise ValueError("swap_ema needs Polyak averages, but this Optimizer was built with polyak=False")
        for w, avg in zip(self._params, self.ema):
            tmp = avg.read_value()
            avg.assign(w.read_value(), read_value=False)
            w.assign(tmp, read_value=False)

    @contextlib.contextmanager
    def averaged_weights(self):
        """Context in which the parameters hold their Polyak averages; the raw weights come back after."""
        self.swap_ema()
        try:
            yield
        finally:
            self.swap_ema()

    def _check_grads(self, grads):
        grads = list(grads)
        if len(grads) != len(self._params):
            raise ValueError(f"expected {len(self._params)} gradients (one per parameter), got {len(grads)}")
        checked = []
        for w, g in zip(self._params, grads):
            if g is None:
                raise ValueError(
                    f"gradient of variable {w.name!r} is None: it is not connected to the loss; leave it out "
                    f"of the Optimizer's params or fix the graph")
            g = tf.convert_to_tensor(g)  # also densifies IndexedSlices, as the original's arithmetic did
            if g.dtype != w.dtype or not g.shape.is_compatible_with(w.shape):
                raise ValueError(
                    f"gradient of variable {w.name!r} has dtype {g.dtype.name} shape {g.shape}, expected "
                    f"{w.dtype.name} {w.shape}")
            checked.append(g)
        return checked


def _check_unit_interval(name, value):
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or not 0 <= value < 1):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")


def _check_params(params):
    params = tuple(params)
    if not params:
        raise ValueError("params is empty: expected the model's trainable tf.Variables")
    seen = set()
    for p in params:
        if not isinstance(p, tf.Variable):
            raise ValueError(f"params must be tf.Variables, got {type(p).__name__} {p!r}")
        if not p.dtype.is_floating:
            raise ValueError(f"param {p.name!r} has dtype {p.dtype.name}, expected a floating dtype")
        if p.ref() in seen:
            raise ValueError(f"param {p.name!r} appears twice in params")
        seen.add(p.ref())
    return params


def _slot(param, suffix, initial_value):
    base = param.name.split(":")[0]
    return tf.Variable(initial_value, dtype=param.dtype, trainable=False, name=f"{base}/{suffix}")
