"""openai Glow's Adamax / Adam with Polyak averaging, and its learning-rate warm-up; ports openai/glow
optim.py (adamax, adam, polyak) and the schedule in train.py:train."""

import contextlib
import math
import numbers
import typing

import numpy as np
import tensorflow as tf

__all__ = ["Optimizer", "beta2_from", "warmup_lr"]

KINDS = ("adamax", "adam")
EPSILON = 1e-8
# The largest group of parameters updated as one flat array. 1 MiB keeps nearly all of the gain over one
# parameter at a time (the bench configuration's 297 parameters become 7 groups; 256 KiB, 1 MiB and
# 32 MiB groups timed alike) while the update's temporary copies stay a few MiB, whatever the model.
BUCKET_BYTES = 2**20


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

    The state is non-trainable: `t`, and m1, m2 and the averages of consecutive parameters concatenated
    into flat variables of up to `bucket_bytes` each, so that one update is about fifteen kernels per
    group instead of about twenty per parameter (the same arithmetic per element, so the same bits). `opt.m1[i]`,
    `opt.m2[i]` and `opt.ema[i]` are parameter i's slots as `SlotView`s, and a checkpoint holds one entry
    per parameter and slot, as when each was a variable of its own: `tf.train.Checkpoint(optimizer=opt)`
    resumes exactly, from checkpoints of either layout. `opt.variables` lists the flat variables (what
    a broadcast or an elastic commit copies). The original made `t` and the moments trainable by accident
    (docs/original.md#q1), with no effect. `apply` works eagerly, under tf.function and with jit_compile.

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
      bucket_bytes: the largest group of parameters whose state is one flat variable (a larger parameter
        is a group of its own); it bounds the update's temporary copies, and changes no result.
      name: name of the module.
    """

    # The parameters belong to the model: keep them out of this module's variables and checkpoint.
    _TF_MODULE_IGNORED_PROPERTIES = frozenset(("_params",)) | tf.Module._TF_MODULE_IGNORED_PROPERTIES

    def __init__(self, params, kind="adamax", *, beta1=0.9, beta2, weight_decay=1.0, polyak=True,
                 bucket_bytes=BUCKET_BYTES, name="optimizer"):
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
        if isinstance(bucket_bytes, bool) or not isinstance(bucket_bytes, numbers.Integral) or bucket_bytes < 1:
            raise ValueError(f"bucket_bytes must be a positive integer, got {bucket_bytes!r}")

        self.kind = kind
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        self.weight_decay = float(weight_decay)
        self.polyak = bool(polyak)
        # The EMA's 1 - decay is a float32 subtraction in TF1 (decay is converted to a tensor first).
        self._ema_rate = float(np.float32(1.0) - np.float32(beta2))
        self._params = self._no_dependency(params)

        self._groups = self._no_dependency(tuple(_groups(params, bucket_bytes)))
        with self.name_scope:
            self.t = tf.Variable(1.0, dtype=tf.float32, trainable=False, name="t")
            slots = (("m1", "adam_m1", self.beta1 > 0, tf.zeros_like),
                     ("m2", "adam_m2", True, tf.zeros_like),
                     ("ema", "ExponentialMovingAverage", self.polyak, lambda p: p.read_value()))
            # The flat variables hold the state (what optimizer.variables lists, broadcasts and copies);
            # the views are what the checkpoint tracks, one per parameter, under the names of old.
            flat = {}
            for attr, suffix, kept, initial in slots:
                flat[attr] = [tf.Variable(_flatten([initial(params[i]) for i in g.members]), trainable=False,
                                          name=f"{attr}_flat_{k}") for k, g in enumerate(self._groups)] if kept else []
                setattr(self, attr, [SlotView(flat[attr][k], g.offsets[j], params[i].shape,
                                              f"{params[i].name.split(':')[0]}/{suffix}")
                                     for k, g in enumerate(self._groups) if kept
                                     for j, i in enumerate(g.members)])
            self._flat = self._no_dependency(flat)

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
        # One group after the other: the groups are independent, so an executor that runs or enqueues
        # ops ahead (a GPU stream) could otherwise hold every group's copies at once, several copies of
        # the model; chained, the update's temporaries are one group's (tests/test_optim.py measures
        # them). On the CPU the chain costs no measurable time.
        done = []
        for k, group in enumerate(self._groups):
            with tf.control_dependencies(done):
                g = _flatten([grads[i] for i in group.members])
                w = _flatten([self._params[i] for i in group.members])
            done = []
            if beta1 > 0:
                m1 = self._flat["m1"][k]
                m1_new = beta1 * m1 + (1.0 - beta1) * g
                done.append(m1.assign(m1_new, read_value=False))
            else:
                m1_new = g
            m2 = self._flat["m2"][k]
            if self.kind == "adamax":
                m2_new = tf.maximum(beta2 * m2, tf.abs(g))
                delta = m1_new / (m2_new + EPSILON)
            else:
                m2_new = beta2 * m2 + (1.0 - beta2) * tf.square(g)
                delta = m1_new / (tf.sqrt(m2_new) + EPSILON)
            done.append(m2.assign(m2_new, read_value=False))
            # 1.0 * w == w exactly: skip the multiply when weight decay is off (the default).
            decayed = w if self.weight_decay == 1.0 else self.weight_decay * w
            w_new = decayed - alpha_t * delta
            done += self._assign_params(group, w_new)
            if self.polyak:
                ema = self._flat["ema"][k]
                done.append(ema.assign_sub((ema - w_new) * self._ema_rate, read_value=False))
            if tf.executing_eagerly():
                done = []  # the assignments have run (and return None)
        self.t.assign_add(1.0, read_value=False)

    def _assign_params(self, group, flat_values):
        pieces = tf.split(flat_values, group.sizes) if len(group.members) > 1 else [flat_values]
        return [self._params[i].assign(tf.reshape(piece, self._params[i].shape), read_value=False)
                for i, piece in zip(group.members, pieces)]

    @tf.autograph.experimental.do_not_convert
    def swap_ema(self):
        """Swap every parameter with its Polyak average in place (openai optim.py:polyak's swap_op).

        The original never calls it in training: evaluation, samples and checkpoints use the raw weights.
        """
        if not self.polyak:
            raise ValueError("swap_ema needs Polyak averages, but this Optimizer was built with polyak=False")
        for group, ema in zip(self._groups, self._flat["ema"]):
            averages = ema.read_value()
            ema.assign(_flatten([self._params[i] for i in group.members]), read_value=False)
            self._assign_params(group, averages)

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


class _Group(typing.NamedTuple):
    members: tuple  # indices into params, consecutive
    sizes: tuple    # their element counts
    offsets: tuple  # where each starts in the group's flat variables


def _groups(params, bucket_bytes):
    """Consecutive runs of params of one dtype, each up to `bucket_bytes` (a larger parameter alone)."""
    groups, members, used = [], [], 0
    for i, p in enumerate(params):
        nbytes = p.shape.num_elements() * p.dtype.size
        if members and (used + nbytes > bucket_bytes or p.dtype != params[members[0]].dtype):
            groups.append(members)
            members, used = [], 0
        members.append(i)
        used += nbytes
    groups.append(members)
    out = []
    for members in groups:
        sizes = tuple(params[i].shape.num_elements() for i in members)
        out.append(_Group(tuple(members), sizes, tuple(int(o) for o in np.cumsum((0,) + sizes[:-1]))))
    return out


def _flatten(tensors):
    flat = [tf.reshape(x, [-1]) for x in tensors]
    return flat[0] if len(flat) == 1 else tf.concat(flat, axis=0)


class SlotView(tf.__internal__.tracking.Trackable):
    """One parameter's m1, m2 or Polyak average: a slice of its group's flat variable, shaped as the
    parameter.

    It reads (`read_value`, `numpy`), assigns (`assign`) and checkpoints as the per-parameter
    tf.Variable that held the slot before the state was kept flat: its checkpoint entry is
    `<path>/.ATTRIBUTES/VARIABLE_VALUE` with the parameter's shape, so checkpoints written by either
    layout restore into the other.
    """

    def __init__(self, flat, offset, shape, name):
        self._flat, self._begin = flat, offset
        self._end = offset + shape.num_elements()
        self.shape, self.dtype, self.name = shape, flat.dtype, name

    def read_value(self):
        return tf.reshape(self._flat[self._begin:self._end], self.shape)

    def numpy(self):
        return self.read_value().numpy()

    def assign(self, value):
        value = tf.convert_to_tensor(value, dtype=self.dtype)
        if not value.shape.is_compatible_with(self.shape):
            raise ValueError(f"cannot assign a value of shape {value.shape} to {self.name!r} of shape {self.shape}")
        return self._flat[self._begin:self._end].assign(tf.reshape(value, [-1]))

    def _serialize_to_tensors(self):
        return {"VARIABLE_VALUE": self.read_value()}

    def _restore_from_tensors(self, restored_tensors):
        return self.assign(restored_tensors["VARIABLE_VALUE"])


# A view reads as a tensor wherever a variable would (tf.add(view, 1), param.assign(view)).
tf.register_tensor_conversion_function(
    SlotView, lambda view, dtype=None, name=None, as_ref=False: tf.convert_to_tensor(view.read_value(), dtype))
