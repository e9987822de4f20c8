"""The Glow model: flow steps, levels, priors, objective, encode/decode/sample; ports openai model.py
and the latent operations of its demo (demo/model.py).

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
from glow_tf.bijectors.networks import LinearZeros
from glow_tf.bijectors.top_prior import TopPrior
from glow_tf import directions as direction_ops
from glow_tf import latents as latent_ops
from glow_tf import reversible
from glow_tf.compiled import batches, compiled
from glow_tf.config import GlowConfig
from glow_tf.latents import eps_sizes

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

    The public methods take and return NumPy: images uint8 [N, H, W, C], latents float32 [N, D]
    (the original's flat eps, see glow_tf.latents), labels `y` int (one class, or one per image;
    only with `ycond`), seeds ints >= 0. They run in batches through tf.functions traced once per
    model for any batch size, under a per-model lock (safe to call from several threads):
      encode, decode, sample, sample_latents, reconstruct, mix, interpolate, manipulate, project,
      flatten, unflatten.

    Graph-level methods take and return tensors, work inside tf.function, and are what training
    and the TFP bijector use (seeds are stateless [2] tensors, latents lists of per-level eps):
      preprocess, dequantize, postprocess, objective, initialize, encode_dequantized (eps and
      log-det of a model-space input), decode_with_log_det, temperature_eps, eps_to_flat,
      flat_to_eps, bijector, distribution.
    """

    def __init__(self, config: GlowConfig, seed=None, name="glow"):
        super().__init__(name=name)
        if not isinstance(config, GlowConfig):
            raise TypeError(f"config must be a GlowConfig, got {type(config).__name__}")
        self.config = config
        # How a training step's gradients are computed (glow_tf.reversible): "store" keeps every
        # activation; "checkpoint" recomputes each flow step's activations in the backward pass (the
        # original's --gradient_checkpointing 1, there via memory_saving_gradients); "reversible"
        # rebuilds each step's input from its output. All three compute the same gradients.
        self.backprop = "store"
        self._reversible_monitor = None
        rng = np.random.RandomState(seed)
        with self.name_scope:
            shapes = config.level_shapes
            self.levels = [Level(shape, config, rng, is_top=(i == len(shapes) - 1), name=f"level_{i}")
                           for i, shape in enumerate(shapes)]
            self.top_prior = TopPrior(config.top_shape, config.learntop, config.ycond, config.n_y)
            c_top = config.top_shape[-1]
            self.classifier = LinearZeros(c_top, config.n_y, name="classifier") if config.has_classifier else None

    @property
    def backprop(self):
        return self._backprop

    @backprop.setter
    def backprop(self, mode):
        if mode not in reversible.BACKPROP_MODES:
            raise ValueError(f"backprop {mode!r}: expected one of {', '.join(reversible.BACKPROP_MODES)}")
        self._backprop = mode

    @property
    def gradient_checkpointing(self):
        """The original's flag, kept: True is backprop "checkpoint"; setting False turns "checkpoint"
        into "store" and leaves "reversible" alone."""
        return self.backprop == "checkpoint"

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, on):
        if on:
            self.backprop = "checkpoint"
        elif self.backprop == "checkpoint":
            self.backprop = "store"

    def configure_backprop(self, backprop=None, gradient_checkpointing=1, reversible_check_every=0):
        """Sets `backprop` from train.py's flags (`reversible.backprop_mode`: --backprop decides when
        given, else --gradient_checkpointing; ValueError on a contradiction) and the reversible guard."""
        mode = reversible.backprop_mode(backprop, gradient_checkpointing)
        if reversible_check_every and mode != "reversible":
            raise ValueError(f"--reversible_check_every {reversible_check_every} checks reversible backprop; "
                             f"this run's is {mode!r} (add --backprop reversible, or drop the check)")
        if reversible_check_every < 0:
            raise ValueError(f"--reversible_check_every {reversible_check_every}: expected N >= 0 (0: off)")
        self.backprop = mode
        self.set_reversible_check(reversible_check_every)

    def set_reversible_check(self, every, threshold=reversible.DEFAULT_CHECK_THRESHOLD):
        """The reversible mode's guard: on every `every`-th training step, each level's input rebuilt
        in the backward pass is compared with the stored one, and a relative error above `threshold`
        is warned about on stderr. `every` 0 switches it off. Call eagerly, before building the step.
        The last check's errors per level are in `reversible_monitor.errors`."""
        self._reversible_monitor = (None if not every else
                                    reversible.ReconstructionMonitor(len(self.levels), every, threshold))

    @property
    def reversible_monitor(self):
        return self._reversible_monitor

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
    # These passes and `objective` are left alone by autograph inside a caller's tf.function: their
    # loops run over the configuration, not over tensors, and converting every layer they call made a
    # training step's graph take 40% more memory to trace (glow_tf.training.steps).
    @tf.autograph.experimental.do_not_convert
    def encode_dequantized(self, x, y=None):
        """(eps list, log-det [N], top z) for a continuous input x [N, H, W, C] in model space.

        The log-det includes the priors' standardisation, so `sum_i log N(eps_i) + log_det` is the
        log-density of x; the top z (before standardisation) feeds the classifier head.
        """
        y = self._check_labels(y, x)
        z = squeeze2d(x)
        log_det = tf.zeros([tf.shape(x)[0]])
        eps = []
        mode = "store" if ddi_active() else self.backprop  # the init assigns as it goes: always plain
        for i, level in enumerate(self.levels):
            if mode == "reversible":
                z, ld = reversible.reversible_steps(level.steps, z, i, self._reversible_monitor)
                log_det += ld
            else:
                for step in level.steps:
                    z, ld = tf.recompute_grad(step.encode)(z) if mode == "checkpoint" else step.encode(z)
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

    @tf.autograph.experimental.do_not_convert
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

    @tf.autograph.experimental.do_not_convert
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

    # --- graph-level helpers: eps lists and flat tensors -----------------------------------------
    def temperature_eps(self, n, temperature=1.0, seed=None):
        """Unit normals times `temperature` for every level (the original's f_sample eps_std): a
        scalar, a per-example vector [n], or a list of per-level values (each scalar or [n]). `seed`
        ([2] ints) makes it stateless and repeatable. A list of per-level tensors."""
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

    def eps_to_flat(self, eps):
        """List of per-level eps tensors -> [N, D]: each flattened row-major (NHWC), concatenated."""
        return tf.concat([tf.reshape(e, [tf.shape(e)[0], -1]) for e in eps], axis=1)

    def flat_to_eps(self, flat):
        """[N, D] tensor -> the list of per-level eps tensors (inverse of `eps_to_flat`)."""
        flat = tf.convert_to_tensor(flat, tf.float32)
        sizes = eps_sizes(self.config)
        if flat.shape.rank != 2 or flat.shape[1] != sum(sizes):
            raise ValueError(f"flat latents must be [N, {sum(sizes)}] for this model, got shape {flat.shape}")
        parts = tf.split(flat, sizes, axis=1)
        return [tf.reshape(p, [-1, *s]) for p, s in zip(parts, self.config.eps_shapes)]

    # --- the public surface: NumPy in and out, batched, compiled, thread-safe ---------------------
    def encode(self, images, y=None, noise="random", seed=None, batch_size=64, progress=False):
        """uint8 images [N, H, W, C] (or one [H, W, C]) -> latents float32 [N, D] (the original's
        f_encode, then flatten_eps).

        The input is dequantised as in the original: `noise` "random" is U(0, 1/n_bins), fresh, or
        repeatable with an int `seed` (image i's noise depends on (seed, i) only); "centre" is the
        bin centre 0.5/n_bins (deterministic); an array [N, H, W, C] is used as given.
        """
        cfg = self.config
        images = latent_ops.check_images(cfg, images)
        y = latent_ops.check_labels(cfg, y, len(images))
        if not isinstance(noise, str):
            noise = np.asarray(noise, np.float32)
            if noise.shape != images.shape:
                raise ValueError(f"noise has shape {noise.shape}; expected the images' shape {images.shape}")
        fns = compiled(self)
        out = np.zeros((len(images), cfg.n_dims), np.float32)
        for a, b in batches(len(images), batch_size, progress, "encode"):
            if isinstance(noise, str):
                u = latent_ops.dequantization_noise(cfg, b - a, noise, seed, start=a)
            else:
                u = noise[a:b]
            out[a:b] = fns.encode(images[a:b], y[a:b], u)
        return out

    def decode(self, latents, y=None, batch_size=64, progress=False, postprocess=True):
        """Latents (flat [N, D] or [D], or a list of per-level eps) -> uint8 images [N, H, W, C]
        (the original's f_decode, then postprocess); with `postprocess=False` the model-space
        floats in [-0.5, 0.5) instead."""
        cfg = self.config
        flat = latent_ops.as_flat(cfg, latents)
        y = latent_ops.check_labels(cfg, y, len(flat))
        fns = compiled(self)
        shape = (len(flat), cfg.image_size, cfg.image_size, cfg.n_channels)
        out = np.zeros(shape, np.uint8 if postprocess else np.float32)
        for a, b in batches(len(flat), batch_size, progress, "decode"):
            x, pixels = fns.decode(flat[a:b], y[a:b])
            out[a:b] = pixels if postprocess else x
        return out

    def sample_latents(self, n, temperature=1.0, seed=None):
        """float32 [n, D]: unit normals times the temperature, sample i from (seed, i) only (a fresh
        seed when None). `temperature` is one number or one per level, split levels first, top last;
        it scales the noise at the top prior and every split, never the means (f_sample's eps_std)."""
        return latent_ops.sample_latents(self.config, latent_ops.check_count(n, "n", 0), temperature, seed)

    def sample(self, n, temperature=1.0, y=None, seed=None, batch_size=64, progress=False):
        """uint8 [n, H, W, C]: `decode(sample_latents(n, temperature, seed), y)`. Temperature 0
        decodes all-zero latents, the prior means at every level, whatever the seed."""
        return self.decode(self.sample_latents(n, temperature, seed), y, batch_size, progress)

    def reconstruct(self, images, y=None, noise="random", seed=None, batch_size=64, progress=False):
        """`decode(encode(images))`: the (bit-reduced) input, up to float round-off at bin edges."""
        z = self.encode(images, y, noise, seed, batch_size, progress)
        return self.decode(z, y, batch_size, progress)

    def mix(self, latent1, latent2, alphas, y=None, batch_size=64):
        """uint8 [K, H, W, C]: `decode(z1 + alpha * (z2 - z1))` for each of K alphas (the demo's mix
        and mix_range); alpha 0 and 1 give the two latents exactly. `y`: one class, or None."""
        path = latent_ops.mix(self._one_latent(latent1), self._one_latent(latent2), alphas)
        return self.decode(path, None if y is None else np.repeat(y, len(path)), batch_size)

    def interpolate(self, image1, image2, steps=8, y=None, noise="random", seed=None, batch_size=64):
        """uint8 [steps, H, W, C]: encode two images, `mix` their latents at alpha =
        linspace(0, 1, steps); the endpoints are the reconstructions. `y`: one class, or None."""
        images = np.concatenate([latent_ops.check_images(self.config, image) for image in (image1, image2)])
        if len(images) != 2:
            raise ValueError(f"interpolate takes two single images, got {len(images)} images")
        z = self.encode(images, None if y is None else [y, y], noise, seed, batch_size)
        alphas = np.linspace(0.0, 1.0, latent_ops.check_count(steps, "steps", 2))
        return self.mix(z[0], z[1], alphas, y, batch_size)

    def manipulate(self, latents, directions, alphas, y=None, batch_size=64):
        """uint8 images: `decode(z + sum_a alphas[k, a] * directions[a])` for each latent z and each of
        K combinations of coefficients (the demo's manipulate, manipulate_all and manipulate_range;
        see `directions.move`).

        `latents` is one latent [D] (result [K, H, W, C]) or [N, D] (result [N, K, H, W, C]);
        `directions` one [D] or several [A, D]; `alphas` [K] for one direction, [A] for one
        combination, or [K, A]. Alpha 0 gives the reconstruction. `y`: one class or one per latent.
        """
        flat = np.asarray(latents, np.float32)
        one = flat.ndim == 1
        moved = direction_ops.move(latent_ops.as_flat(self.config, flat), directions, alphas)  # [N, K, D]
        n, k = moved.shape[:2]
        labels = None if y is None else np.repeat(latent_ops.check_labels(self.config, y, n), k)
        images = self.decode(moved.reshape(n * k, -1), labels, batch_size).reshape(n, k, *self._image_shape)
        return images[0] if one else images

    def project(self, latents, directions):
        """The coefficient of each direction in each latent, `z . d / |d|^2` (the demo's project), so
        that `manipulate(z, d, -project(z, d))` decodes a latent with no component along d. Shapes
        as `z @ d.T`: [N, A] for latents [N, D] and directions [A, D]; a [D] input drops its axis."""
        z, d = np.asarray(latents, np.float32), np.asarray(directions, np.float32)
        out = direction_ops.project(latent_ops.as_flat(self.config, z), d)
        return out[0 if z.ndim == 1 else slice(None), ..., 0 if d.ndim == 1 else slice(None)]

    def flatten(self, eps):
        """A list of per-level eps [N, h, w, c] -> latents float32 [N, D] (the original's flatten_eps)."""
        return latent_ops.flatten_eps(self.config, eps)

    def unflatten(self, latents):
        """Latents [N, D] -> the list of per-level eps [N, h, w, c] (the original's unflatten_eps)."""
        return latent_ops.unflatten_eps(self.config, latents)

    def _one_latent(self, latent):
        flat = latent_ops.as_flat(self.config, latent)
        if len(flat) != 1:
            raise ValueError(f"expected one latent of {self.config.n_dims} values, got {len(flat)}")
        return flat[0]

    @property
    def _image_shape(self):
        return (self.config.image_size, self.config.image_size, self.config.n_channels)

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
        """The labels of the graph-level methods. None for an unconditional model, which has no use for
        them (training feeds every problem's labels, as the original did). For a class-conditional one,
        latents.check_labels (the package's one rule set): in full when the values are known (NumPy,
        Python, eager or constant tensors); inside tf.function, what the type shows (integer dtype, one
        label or one per example of `like`)."""
        if not self.config.ycond:
            return None
        shape = tf.TensorShape(like.shape)
        n = shape[0] if shape.rank else None
        values = tf.get_static_value(y) if tf.is_tensor(y) else y
        if y is None or values is not None:  # the values are known: every rule
            one = np.ndim(values) == 0
            count = n if n is not None else 1 if one else len(values)
            labels = tf.constant(latent_ops.check_labels(self.config, values, count))
            return tf.fill(tf.shape(like)[:1], labels[0]) if one and n is None else labels
        latent_ops.check_label_type(self.config, y.dtype.as_numpy_dtype,
                                    None if y.shape.rank is None else tuple(y.shape), n)
        return tf.fill(tf.shape(like)[:1], y) if y.shape.rank == 0 else y

    def _as_eps_list(self, eps):
        if not isinstance(eps, (list, tuple)):
            return self.flat_to_eps(eps)
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
            x, 3, lambda v: self._glow.eps_to_flat(self._glow.encode_dequantized(v, self._y)[0]))

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
