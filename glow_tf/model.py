"""The Glow model: flow steps, levels, priors, objective, encode/decode/sample; ports openai model.py.

Encode direction (the original's `encoder`, TFP's inverse), for L levels of K steps:

    x (uint8) -> preprocess + U(0, 1/n_bins) noise -> squeeze
      -> level 0: K x [actnorm -> permutation -> coupling] -> split: eps_0 out, squeeze the kept half
      -> ...
      -> level L-1: K x [step] -> top prior -> eps_{L-1}

Decode (TFP's forward) runs the exact reverse. `eps` are the original's standardised latents, one
array per level, split levels first and the top last.
"""
import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from glow_tf.bijectors.actnorm import ActNorm
from glow_tf.bijectors.base import FlowBijector, data_dependent_init, ddi_active
from glow_tf.bijectors.coupling import AdditiveCoupling, AffineCoupling
from glow_tf.bijectors.invertible_conv import InvertibleConv1x1, InvertibleConv1x1LU
from glow_tf.bijectors.permutations import ReverseChannels, ShuffleChannels
from glow_tf.bijectors.split import Split
from glow_tf.bijectors.squeeze import squeeze2d, unsqueeze2d
from glow_tf.bijectors.top_prior import TopPrior
from glow_tf.config import GlowConfig
from glow_tf.bijectors.networks import LinearZeros

tfb, tfd = tfp.bijectors, tfp.distributions

_LOG_2PI = math.log(2 * math.pi)


class FlowStep(FlowBijector):
    """One step of flow (openai revnet2d_step): encode is actnorm -> permutation -> coupling."""

    def __init__(self, num_channels, config, rng, name="step"):
        self.actnorm = ActNorm(num_channels, name="actnorm")
        if config.flow_permutation == "reverse":
            self.permutation = ReverseChannels(num_channels)
        elif config.flow_permutation == "shuffle":
            self.permutation = ShuffleChannels(num_channels, rng)
        elif config.lu:
            self.permutation = InvertibleConv1x1LU(num_channels, rng)
        else:
            self.permutation = InvertibleConv1x1(num_channels, rng)
        coupling = AffineCoupling if config.flow_coupling == "affine" else AdditiveCoupling
        self.coupling = coupling(num_channels, config.width, rng)
        super().__init__(name=name)

    def encode(self, x):
        log_det = 0.0
        for layer in (self.actnorm, self.permutation, self.coupling):
            x, ld = layer.encode(x)
            log_det += ld
        return x, log_det

    def decode(self, z):
        log_det = 0.0
        for layer in (self.coupling, self.permutation, self.actnorm):
            z, ld = layer.decode(z)
            log_det += ld
        return z, log_det


class Level(tf.Module):
    """K flow steps at one scale (openai revnet2d), then a Split unless it is the top level."""

    def __init__(self, shape, config, rng, is_top, name):
        super().__init__(name=name)
        c = shape[-1]
        self.steps = [FlowStep(c, config, rng, name=f"step_{k}") for k in range(config.depth)]
        self.split = None if is_top else Split(c, name="split")


def _normal_log_prob(eps):
    """log N(eps; 0, I) summed per example."""
    return -0.5 * tf.reduce_sum(_LOG_2PI + tf.square(eps), axis=[1, 2, 3])


class Glow(tf.Module):
    """The whole Glow model of one `GlowConfig`, with every variable created at construction.

    Args:
      config: a `GlowConfig`.
      seed: seeds the NumPy generator for the initial weights (random orthogonal 1x1 convs,
        N(0, 0.05) hidden convs, shuffle permutations).

    Images are uint8 [N, H, W, C]; labels `y` are int [N] (needed only with `ycond`).
    """

    def __init__(self, config: GlowConfig, seed=None, name="glow"):
        super().__init__(name=name)
        if not isinstance(config, GlowConfig):
            raise TypeError(f"config must be a GlowConfig, got {type(config).__name__}")
        self.config = config
        # Recompute each flow step's activations in the backward pass instead of keeping them
        # (the original's --gradient_checkpointing 1, there via memory_saving_gradients).
        self.gradient_checkpointing = False
        rng = np.random.RandomState(seed)
        with self.name_scope:
            shapes = config.level_shapes
            self.levels = [Level(shape, config, rng, is_top=(i == len(shapes) - 1), name=f"level_{i}")
                           for i, shape in enumerate(shapes)]
            self.top_prior = TopPrior(config.top_shape, config.learntop, config.ycond, config.n_y)
            c_top = config.top_shape[-1]
            self.classifier = LinearZeros(c_top, config.n_y, name="classifier") if config.has_classifier else None

    # --- pixels <-> the model's continuous input --------------------------------------------------
    def preprocess(self, x):
        """uint8 -> float in [-0.5, 0.5): keep n_bits_x bits (floor), then `x / n_bins - 0.5`."""
        x = tf.convert_to_tensor(x)
        self._check_images(x)
        x = tf.cast(x, tf.float32)
        if self.config.n_bits_x < 8:
            x = tf.floor(x / 2 ** (8 - self.config.n_bits_x))
        return x / self.config.n_bins - 0.5

    def dequantize(self, x, noise=None, seed=None):
        """preprocess(x) + noise, noise ~ U(0, 1/n_bins) (not centred), drawn fresh unless given.

        `seed` ([2] ints) makes the draw stateless and repeatable.
        """
        z = self.preprocess(x)
        if noise is None:
            shape, high = tf.shape(z), 1.0 / self.config.n_bins
            noise = (tf.random.stateless_uniform(shape, seed, 0.0, high) if seed is not None
                     else tf.random.uniform(shape, 0.0, high))
        return z + noise

    def postprocess(self, x):
        """Model space -> uint8: `floor((x + .5) * n_bins) * 256 / n_bins`, clipped (so saturation is 255)."""
        n_bins = self.config.n_bins
        return tf.cast(tf.clip_by_value(tf.floor((x + 0.5) * n_bins) * (256.0 / n_bins), 0, 255), tf.uint8)

    # --- the flow in latent coordinates -----------------------------------------------------------
    def encode_dequantized(self, x, y=None):
        """(eps list, log-det [N], top z) for a continuous input x [N, H, W, C] in model space.

        The log-det includes the priors' standardisation, so `sum_i log N(eps_i) + log_det` is the
        log-density of x; the top z (before standardisation) feeds the classifier head.
        """
        y = self._check_labels(y, x)
        z = squeeze2d(x)
        log_det = tf.zeros([tf.shape(x)[0]])
        eps = []
        recompute = self.gradient_checkpointing and not ddi_active()
        for level in self.levels:
            for step in level.steps:
                z, ld = tf.recompute_grad(step.encode)(z) if recompute else step.encode(z)
                log_det += ld
            if level.split is not None:
                z1, z2 = tf.split(z, 2, axis=-1)
                e, ld = level.split.standardise(z1, z2)
                eps.append(e)
                log_det += ld
                z = squeeze2d(z1)
        e, ld = self.top_prior.encode(z, labels=y)
        eps.append(e)
        return eps, log_det + ld, z

    def decode_with_log_det(self, eps, y=None):
        """(x, log-det of the decode map) for a list of eps, top last: the original's `decoder`."""
        eps = self._as_eps_list(eps)
        y = self._check_labels(y, eps[-1])
        z, log_det = self.top_prior.decode(eps[-1], labels=y)
        for i in reversed(range(len(self.levels))):
            level = self.levels[i]
            if level.split is not None:
                z1 = unsqueeze2d(z)
                z2, ld = level.split.unstandardise(z1, eps[i])
                log_det += ld
                z = tf.concat([z1, z2], axis=-1)
            for step in reversed(level.steps):
                z, ld = step.decode(z)
                log_det += ld
        return unsqueeze2d(z), log_det

    # --- the public surface -----------------------------------------------------------------------
    def encode(self, x, y=None, noise=None, seed=None):
        """uint8 images -> standardised latents eps, one per level (the original's f_encode).

        As in the original, the input is dequantised with fresh U(0, 1/n_bins) noise unless `noise`
        (or a `seed` for it) is given.
        """
        return self.encode_dequantized(self.dequantize(x, noise, seed), y)[0]

    def decode(self, eps, y=None):
        """eps (a list per level or the flat [N, D] vector) -> images in model space [-0.5, 0.5).

        `postprocess` turns the result into uint8 pixels.
        """
        return self.decode_with_log_det(eps, y)[0]

    def sample_eps(self, n, temperature=1.0, seed=None):
        """Unit normals times `temperature` for every level: a scalar, a per-example vector [n], or
        a list of per-level values (each scalar or [n]). `seed` ([2] ints) makes it repeatable."""
        temps = temperature if isinstance(temperature, (list, tuple)) else [temperature] * len(self.levels)
        if len(temps) != len(self.levels):
            raise ValueError(f"{len(temps)} per-level temperatures given; the model has {len(self.levels)} levels")
        eps = []
        for i, (shape, t) in enumerate(zip(self.config.eps_shapes, temps)):
            t = tf.convert_to_tensor(t, tf.float32)
            tf.debugging.assert_non_negative(t, message="temperature must be >= 0")
            full = [n, *shape]
            e = (tf.random.stateless_normal(full, tf.stack([seed[0], seed[1] + i])) if seed is not None
                 else tf.random.normal(full))
            eps.append(e * tf.reshape(t, [-1, 1, 1, 1]))
        return eps

    def sample(self, n, temperature=1.0, y=None, seed=None):
        """n images in model space at a temperature applied at the top AND every split (f_sample)."""
        return self.decode(self.sample_eps(n, temperature, seed), y)

    def objective(self, x, y=None, noise=None, seed=None):
        """The original's per-image objective (model.py:_f_loss), in bits, as a dict of [N] tensors.

        - `bits_x`: `-(log p(x + noise) - D log n_bins) / (D log 2)`;
        - `bits_y`: the classifier head's cross-entropy in bits (zeros without it);
        - `loss`: `bits_x + weight_y * bits_y`;
        - `pred_loss`: classification error (ones without the head, as the original logs);
        - `y_logits` [N, n_y]: only with the head.

        The dequantisation noise is `noise` when given, else drawn (statelessly from `seed` if given).
        """
        cfg = self.config
        z = self.dequantize(x, noise, seed)
        eps, log_det, z_top = self.encode_dequantized(z, y)
        log_p = log_det + tf.add_n([_normal_log_prob(e) for e in eps])
        objective = log_p - cfg.n_dims * math.log(cfg.n_bins)
        bits_x = -objective / (cfg.n_dims * math.log(2.0))
        out = {"bits_x": bits_x}
        if self.classifier is not None:
            y = tf.cast(y, tf.int32)
            logits = self.classifier(tf.reduce_mean(z_top, axis=[1, 2]))
            out["bits_y"] = tf.nn.softmax_cross_entropy_with_logits(
                labels=tf.one_hot(y, cfg.n_y), logits=logits) / math.log(2.0)
            out["pred_loss"] = 1.0 - tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), y), tf.float32)
            out["y_logits"] = logits
        else:
            out["bits_y"] = tf.zeros_like(bits_x)
            out["pred_loss"] = tf.ones_like(bits_x)
        out["loss"] = bits_x + cfg.weight_y * out["bits_y"]
        return out

    def initialize(self, x, y=None, noise=None, seed=None):
        """Data-dependent init (the original's `init=True` pass) on a batch of uint8 images.

        One eager encode pass in which every actnorm, in order, sets itself to give zero mean and
        unit variance per channel on what reaches it (the actnorms inside the coupling networks
        included). Actnorms already initialised, e.g. restored from a checkpoint, are left alone, so
        calling this on a restored model changes nothing. Returns the per-image bits_x after init.
        """
        if not tf.executing_eagerly():
            raise RuntimeError("Glow.initialize runs eagerly (it assigns layer by layer); call it outside tf.function")
        with data_dependent_init():
            return self.objective(x, y, noise, seed)["bits_x"]

    @property
    def is_initialized(self):
        return all(bool(m.initialized) for m in self.submodules if isinstance(m, ActNorm))

    # --- latents as flat vectors (the original's flatten_eps / unflatten_eps) ---------------------
    def flatten_eps(self, eps):
        """List of per-level eps -> [N, D]: each flattened row-major (NHWC), concatenated in order."""
        return tf.concat([tf.reshape(e, [tf.shape(e)[0], -1]) for e in eps], axis=1)

    def unflatten_eps(self, flat):
        flat = tf.convert_to_tensor(flat, tf.float32)
        sizes = [int(np.prod(s)) for s in self.config.eps_shapes]
        if flat.shape.rank != 2 or flat.shape[1] != sum(sizes):
            raise ValueError(f"flat latents must be [N, {sum(sizes)}] for this model, got shape {flat.shape}")
        parts = tf.split(flat, sizes, axis=1)
        return [tf.reshape(p, [-1, *s]) for p, s in zip(parts, self.config.eps_shapes)]

    # --- TFP view -------------------------------------------------------------------------------
    def bijector(self, y=None):
        """The flow as one TFP bijector: forward = flat eps [N, D] -> image in model space."""
        return GlowBijector(self, y)

    def distribution(self, y=None):
        """`TransformedDistribution(N(0, I_D), bijector)`: samples images (temperature 1); its
        `log_prob` is the continuous density of a dequantised image in model space."""
        base = tfd.Sample(tfd.Normal(0.0, 1.0), sample_shape=[self.config.n_dims])
        return tfd.TransformedDistribution(base, self.bijector(y))

    # --- input checks ---------------------------------------------------------------------------
    def _check_images(self, x):
        cfg = self.config
        want = (cfg.image_size, cfg.image_size, cfg.n_channels)
        if x.shape.rank is not None and (x.shape.rank != 4 or tuple(x.shape[1:]) != want):
            raise ValueError(f"images must be [N, {want[0]}, {want[1]}, {want[2]}] for this model, "
                             f"got shape {tuple(x.shape)}")

    def _check_labels(self, y, like):
        if not self.config.ycond:
            return None
        if y is None:
            raise ValueError("this model is class-conditional (ycond=True): pass the labels y")
        y = tf.convert_to_tensor(y)
        if y.dtype.is_floating or y.shape.rank != 1:
            raise ValueError(f"labels y must be integers of shape [N], got {y.dtype.name} {y.shape}")
        n = tf.TensorShape(like.shape)[0] if tf.TensorShape(like.shape).rank else None
        if y.shape[0] is not None and n is not None and y.shape[0] != n:
            raise ValueError(f"{y.shape[0]} labels given for a batch of {n}; expected one label per example")
        if tf.executing_eagerly() and y.shape[0]:
            bad = y.numpy()[(y.numpy() < 0) | (y.numpy() >= self.config.n_y)]
            if bad.size:
                raise ValueError(f"label {bad[0]} is out of range for n_y={self.config.n_y}")
        return y

    def _as_eps_list(self, eps):
        if not isinstance(eps, (list, tuple)):
            return self.unflatten_eps(eps)
        shapes = self.config.eps_shapes
        if len(eps) != len(shapes):
            raise ValueError(f"{len(eps)} latent arrays given; this model has {len(shapes)} levels")
        eps = [tf.convert_to_tensor(e, tf.float32) for e in eps]
        for i, (e, s) in enumerate(zip(eps, shapes)):
            if tuple(e.shape[1:]) != tuple(s):
                raise ValueError(f"eps[{i}] must be [N, {', '.join(map(str, s))}], got shape {tuple(e.shape)}")
        return eps


class GlowBijector(tfb.Bijector):
    """A Glow model as a TFP bijector between flat latents [N, D] and images [N, H, W, C].

    forward: eps -> x (decode), inverse: x -> eps (encode, no dequantisation noise added: x is
    already continuous). `inverse_log_det_jacobian(x, event_ndims=3)` is the sum of all layers'
    log-dets and the priors' standardisations, so `log N(eps) + ildj` is log p(x).
    """

    def __init__(self, glow, y=None):
        self._glow, self._y = glow, y
        super().__init__(forward_min_event_ndims=1, inverse_min_event_ndims=3, validate_args=False,
                         name="glow_bijector")

    @staticmethod
    def _one_batch_dim(value, event_ndims, fn):
        """fn (on [N, *event]) applied to value [*batch, *event]: the model takes exactly one batch
        dimension, while TFP passes none (`distribution().sample()`) or several (`sample([2, 3])`)."""
        value = tf.convert_to_tensor(value, tf.float32)
        rank = value.shape.rank
        if rank == event_ndims + 1:
            return fn(value)
        out = fn(tf.reshape(value, [-1, *value.shape[rank - event_ndims:]]))
        return tf.reshape(out, tf.concat([tf.shape(value)[:rank - event_ndims], tf.shape(out)[1:]], axis=0))

    def _forward(self, eps):
        return self._one_batch_dim(eps, 1, lambda e: self._glow.decode_with_log_det(e, self._y)[0])

    def _inverse(self, x):
        return self._one_batch_dim(
            x, 3, lambda v: self._glow.flatten_eps(self._glow.encode_dequantized(v, self._y)[0]))

    def _forward_log_det_jacobian(self, eps):
        return self._one_batch_dim(eps, 1, lambda e: self._glow.decode_with_log_det(e, self._y)[1])

    def _inverse_log_det_jacobian(self, x):
        return self._one_batch_dim(x, 3, lambda v: self._glow.encode_dequantized(v, self._y)[1])

    def _forward_event_shape(self, shape):
        cfg = self._glow.config
        return tf.TensorShape([cfg.image_size, cfg.image_size, cfg.n_channels])

    def _forward_event_shape_tensor(self, shape):
        cfg = self._glow.config
        return tf.constant([cfg.image_size, cfg.image_size, cfg.n_channels], tf.int32)

    def _inverse_event_shape(self, shape):
        return tf.TensorShape([self._glow.config.n_dims])

    def _inverse_event_shape_tensor(self, shape):
        return tf.constant([self._glow.config.n_dims], tf.int32)
