"""Reversible backpropagation through the flow: the training step keeps no flow step's activations.

A level's K steps run as one `tf.custom_gradient` whose forward keeps only the level's output. In
the backward pass each step's input is rebuilt from its output by the step's inverse (`decode`), the
step is re-run forward on that rebuilt input under a tape, and the vector-Jacobian product of (z,
log-det) gives the input's gradient and the step's variables' gradients, one step at a time, from
the last step to the first (the RevNet / i-RevNet idea). So a level holds one step's activations at
a time, whatever K. The splits, squeezes and priors between levels run under ordinary autodiff
(they hold a few tensors per level, none per step).

The rebuilt input equals the stored one only up to float32 round-off, which grows along the chain
and with an ill-conditioned 1x1 convolution: `reconstruction_errors` measures it per step and level,
and `Glow.reversible_check_every` turns on a guard that compares, on every N-th step, each level's
rebuilt input with the stored one and warns above `Glow.reversible_check_threshold`
(docs/reversible.md has figures and says when not to use this mode).

The three ways `Glow.backprop` computes a training step's gradients:
- "store": autodiff keeps every activation (`--gradient_checkpointing 0`);
- "checkpoint": each flow step in `tf.recompute_grad`, which keeps each step's input and recomputes
  its activations in the backward pass (the original's `--gradient_checkpointing 1`, its default);
- "reversible": this module.
"""
import sys

import tensorflow as tf
from tensorflow.python.ops import control_flow_util

BACKPROP_MODES = ("store", "checkpoint", "reversible")
DEFAULT_CHECK_THRESHOLD = 1e-4  # relative error, max |rebuilt - stored| / max |stored|, of a level's input


def backprop_mode(backprop, gradient_checkpointing=1):
    """The backprop mode train.py's two flags ask for.

    `--backprop` decides when given; without it `--gradient_checkpointing` does, as in the original
    (1: "checkpoint", its default; 0: "store"). The one contradiction, `--backprop checkpoint` with
    `--gradient_checkpointing 0`, is an error (reversible mode recomputes too, so `--backprop
    reversible` goes with either value; `store` overrides the default 1).
    """
    if gradient_checkpointing not in (0, 1, True, False):
        raise ValueError(f"--gradient_checkpointing {gradient_checkpointing!r}: expected 0 or 1")
    if backprop is None:
        return "checkpoint" if gradient_checkpointing else "store"
    if backprop not in BACKPROP_MODES:
        raise ValueError(f"--backprop {backprop!r}: expected one of {', '.join(BACKPROP_MODES)}")
    if backprop == "checkpoint" and not gradient_checkpointing:
        raise ValueError("--backprop checkpoint contradicts --gradient_checkpointing 0; give one of them "
                         "(--backprop store is --gradient_checkpointing 0)")
    return backprop


class ReconstructionMonitor:
    """The guard's state: the number of reversible backward passes so far and, per level, the relative
    error of the rebuilt level input at the last check. A plain object (not tracked by the model's
    checkpoints); its variables are created eagerly when the guard is switched on."""

    def __init__(self, n_levels, every, threshold):
        if int(every) < 1:
            raise ValueError(f"reversible_check_every {every!r}: expected a positive number of steps (0: off)")
        if not float(threshold) > 0:
            raise ValueError(f"reversible_check_threshold {threshold!r}: expected a positive relative error")
        self.every, self.threshold = int(every), float(threshold)
        self.count = tf.Variable(0, dtype=tf.int64, trainable=False, name="reversible_backward_passes")
        self.errors = tf.Variable(tf.fill([n_levels], -1.0), trainable=False, name="reversible_errors")
        self.checked_at = tf.Variable(-1, dtype=tf.int64, trainable=False, name="reversible_checked_at")

    def record(self, level, rebuilt, stored):
        """Records (on a check pass) the relative error of one level's rebuilt input; warns above the
        threshold (in-graph, on stderr; under XLA, which cannot print, read `errors`)."""
        count = self.count.read_value()
        check = tf.equal(count % self.every, 0)
        err = relative_error(rebuilt, stored)
        new = tf.tensor_scatter_nd_update(self.errors, [[level]], tf.reshape(err, [1]))
        self.errors.assign(tf.where(check, new, self.errors))
        if level == 0:  # level 0's backward runs last: one pass done
            self.checked_at.assign(tf.where(check, count, self.checked_at))
            self.count.assign_add(1)
        if not control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()):
            def warn():
                tf.print("glow_tf reversible backprop: at backward pass", count, f"level {level}'s rebuilt input "
                         "differs from the stored one by", err, f"(relative) > {self.threshold:g}: its gradients "
                         "are inexact; see docs/reversible.md", output_stream=sys.stderr)
                return tf.constant(True)
            tf.cond(tf.logical_and(check, err > self.threshold), warn, lambda: tf.constant(False))


def relative_error(rebuilt, stored):
    """max |rebuilt - stored| / max |stored| (float32 scalar)."""
    scale = tf.reduce_max(tf.abs(stored))
    return tf.reduce_max(tf.abs(rebuilt - stored)) / tf.maximum(scale, 1e-30)


def encode_steps(steps, x):
    """(z, log-det [N]): the steps' encode in order, under ordinary autodiff."""
    log_det = tf.zeros([tf.shape(x)[0]])
    for step in steps:
        x, ld = step.encode(x)
        log_det += ld
    return x, log_det


def rebuild_input(step, z):
    """A step's input rebuilt from its output by the step's inverse (no gradient flows through it)."""
    return tf.stop_gradient(step.decode(z)[0])


def _coupling_kind(layer):
    """"affine" or "additive" for the couplings whose inverse can share its network pass with the
    gradient (below); None for any other layer."""
    from glow_tf.bijectors.coupling import AdditiveCoupling, AffineCoupling

    return {AffineCoupling: "affine", AdditiveCoupling: "additive"}.get(type(layer))


def _layers(step):
    """The step's layers in encode order when it is a FlowStep (actnorm, permutation, coupling);
    else the step itself, taken as one layer."""
    layers = [getattr(step, name, None) for name in ("actnorm", "permutation", "coupling")]
    return layers if all(layer is not None for layer in layers) else [step]


def _coupling_backward(layer, kind, z, dz, dlog_det):
    """(input x, its gradient, gradients of the layer's variables) of a coupling from its output z.

    The network's one pass serves both the inverse and the gradient: `f(z1)` is computed under a tape
    (z1 = x1: the first half passes unchanged), x2 is rebuilt from it (without gradient), and the
    forward `z2 = x2 + f(x1)` (additive) or `(x2 + shift) * scale` (affine, log-det `sum log scale`)
    is written again from x2 and the taped f, so that the tape holds the forward's exact derivative at
    (x1, x2) and the network is not run a third time (inverse, re-run forward, backward)."""
    z1, z2 = tf.split(z, 2, axis=-1)
    params = layer.trainable_variables
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(z1)
        tape.watch(params)
        if kind == "affine":
            shift, scale = layer._shift_and_scale(z1)
            x2 = tf.stop_gradient(z2 / scale - shift)
            tape.watch(x2)
            again = (x2 + shift) * scale
            ld = tf.broadcast_to(tf.reduce_sum(tf.math.log(scale), axis=[1, 2, 3]), tf.shape(dlog_det))
        else:
            f = layer.f1(z1)
            x2 = tf.stop_gradient(z2 - f)
            tape.watch(x2)
            again = x2 + f
            ld = tf.zeros_like(dlog_det)
    dz1, dz2 = tf.split(dz, 2, axis=-1)
    grads = tape.gradient([again, ld], [z1, x2, *params], output_gradients=[dz2, dlog_det],
                          unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return tf.concat([z1, x2], axis=-1), tf.concat([dz1 + grads[0], grads[1]], axis=-1), params, grads[2:]


def _layer_backward(layer, z, dz, dlog_det):
    """(input x, its gradient, the layer's variables, their gradients) of any layer from its output z:
    x rebuilt by the layer's inverse, then its encode run again on x under a tape."""
    inp = rebuild_input(layer, z)
    params = layer.trainable_variables
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(inp)
        tape.watch(params)
        again, ld = layer.encode(inp)
        ld = tf.broadcast_to(ld, tf.shape(dlog_det))
    grads = tape.gradient([again, ld], [inp, *params], output_gradients=[dz, dlog_det],
                          unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return inp, grads[0], params, grads[1:]


def reversible_steps(steps, x, level=0, monitor=None):
    """`encode_steps(steps, x)` with reversible gradients: (z, log-det [N]).

    Backwards, layer by layer within each step (a FlowStep's coupling, permutation, actnorm): each
    layer's input is rebuilt from its output and the layer's vector-Jacobian product taken at it; a
    coupling's network runs once for both (`_coupling_backward`), so a step costs its forward pass,
    one more forward pass of its network and the backward pass, as under "checkpoint".

    The gradient covers x and every trainable variable the steps read (TensorFlow passes them to the
    gradient function as `variables`, in its own order; each gets the sum over the steps that use it).
    With a `monitor`, the level input rebuilt at the end of the backward pass is compared with the
    stored x (which the monitor then keeps alive: one tensor per level).
    """
    steps = list(steps)
    owned = {v.ref() for step in steps for v in step.trainable_variables}

    @tf.custom_gradient
    def chain(x):
        z, log_det = encode_steps(steps, x)

        def grad(dz, dlog_det, variables=None):
            variables = list(variables or [])
            foreign = [v.name for v in variables if v.ref() not in owned]
            if foreign:
                raise ValueError(f"reversible backprop: the flow steps read variables they do not own: {foreign}")
            dz = tf.zeros_like(z) if dz is None else dz
            dlog_det = tf.zeros_like(log_det) if dlog_det is None else dlog_det
            totals = {}
            out = z
            for step in reversed(steps):
                for layer in reversed(_layers(step)):
                    # After the layer above is done: otherwise the executor may run the whole chain
                    # of inverses ahead (it depends on z only) and hold every rebuilt input at once.
                    with tf.control_dependencies([dz]):
                        out = tf.identity(out)
                    kind = _coupling_kind(layer)
                    if kind is not None:
                        out, dz, params, grads = _coupling_backward(layer, kind, out, dz, dlog_det)
                    else:
                        out, dz, params, grads = _layer_backward(layer, out, dz, dlog_det)
                    for v, g in zip(params, grads):
                        g = tf.convert_to_tensor(g)
                        totals[v.ref()] = totals[v.ref()] + g if v.ref() in totals else g
            if monitor is not None:
                monitor.record(level, out, x)
            return dz, [totals.get(v.ref(), tf.zeros_like(v)) for v in variables]

        return (z, log_det), grad

    return chain(x)


def reconstruction_errors(glow, x):
    """Per level, per step: the relative error max|rebuilt - stored| / max|stored| of each flow step's
    input rebuilt as reversible backprop rebuilds it (from the level's stored output, back through the
    steps' inverses) against the input the forward pass computed. `x` is a model-space input [N, H, W,
    C] (e.g. `glow.dequantize(images)`). Returns a list (levels) of lists (steps, first step first) of
    floats; an error grows towards the level's first step."""
    from glow_tf.bijectors.squeeze import squeeze2d

    z = squeeze2d(tf.convert_to_tensor(x, tf.float32))
    out = []
    for level in glow.levels:
        stored = []
        for step in level.steps:
            stored.append(z)
            z = step.encode(z)[0]
        errors, rebuilt = [], z
        for step, inp in zip(reversed(level.steps), reversed(stored)):
            rebuilt = rebuild_input(step, rebuilt)
            errors.append(float(relative_error(rebuilt, inp)))
        out.append(errors[::-1])
        if level.split is not None:
            z = squeeze2d(tf.split(z, 2, axis=-1)[0])
    return out
