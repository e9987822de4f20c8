"""Sampling and the latent-space tools: temperature sampling, batched encode / decode to the
original's flat standardised latents, reconstruction, interpolation and attribute directions.

Ports openai train.py's sampling (model.py:f_sample, `eps_std` at the top prior AND every split),
model.py:f_encode / f_decode with flatten_eps, and the demo (demo/model.py: manipulate, mix,
manipulate_range, mix_range; demo/get_manipulators.py: mean latent with an attribute minus mean
latent without, times 1.6).

Latents are NumPy float32 [N, D], the original's flat `eps`: per level the standardised latent
`(z - mean) / exp(logs)` flattened row-major (NHWC), levels concatenated in the original's order
(split levels 0..L-2, then the top prior). Images are uint8 [N, H, W, C]. Every function runs the
model in batches (`batch_size`) through a `tf.function` compiled once per model, with an optional
tqdm progress bar.
"""
import csv
import glob
import os
import weakref

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from glow_tf.io import atomic_path

DEMO_SCALE = 1.6  # demo/get_manipulators.py: z_manipulate = 1.6 * (mean with - mean without)

# The 40 CelebA attributes, in CelebA's (and the TFRecords' `attr` field's) order: demo/model.py _TAGS.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young")

NOISE_MODES = ("random", "centre")


# --- the flat latent layout -------------------------------------------------------------------------
def eps_sizes(config):
    """Number of latent dimensions per level, in the original's order (splits, then the top)."""
    return [int(np.prod(s)) for s in config.eps_shapes]


def flatten_eps(config, eps):
    """A list of per-level eps [N, h, w, c] -> flat [N, D] (openai model.py:flatten_eps)."""
    return np.concatenate([e.reshape(len(e), -1) for e in check_eps(config, list(eps))], axis=1)


def unflatten_eps(config, flat):
    """Flat [N, D] -> the list of per-level eps [N, h, w, c] (openai model.py:unflatten_eps)."""
    flat = check_eps(config, flat)
    parts = np.split(flat, np.cumsum(eps_sizes(config))[:-1], axis=1)
    return [p.reshape(len(p), *s) for p, s in zip(parts, config.eps_shapes)]


def check_eps(config, eps):
    """Validates latents for this model: flat [N, D] or a list of per-level arrays; float32, finite."""
    shapes, d = [tuple(s) for s in config.eps_shapes], sum(eps_sizes(config))
    if isinstance(eps, (list, tuple)):
        if len(eps) != len(shapes):
            raise ValueError(f"{len(eps)} per-level latent arrays given; this model has {len(shapes)} levels "
                             f"with shapes {shapes}")
        out = []
        for i, (e, s) in enumerate(zip(eps, shapes)):
            e = np.asarray(e, np.float32)
            if e.ndim != 4 or e.shape[1:] != s or (out and len(e) != len(out[0])):
                raise ValueError(f"eps_{i} has shape {e.shape}; this model expects [N, {', '.join(map(str, s))}]"
                                 f" with the same N at every level")
            out.append(e)
        if not all(np.isfinite(e).all() for e in out):
            raise ValueError("latents contain NaN or infinite values")
        return out
    flat = np.asarray(eps, np.float32)
    if flat.ndim == 1 and flat.shape[0] == d:
        flat = flat[None]
    if flat.ndim != 2 or flat.shape[1] != d:
        raise ValueError(f"latents have shape {flat.shape}; this model expects flat latents [N, {d}] "
                         f"(levels {shapes}, flattened and concatenated)")
    if not np.isfinite(flat).all():
        raise ValueError("latents contain NaN or infinite values")
    return flat


# --- temperature ------------------------------------------------------------------------------------
def check_temperature(temperature, n_levels):
    """A temperature (a number, or one number per level in the eps order) -> a tuple of n_levels floats.

    Temperature multiplies the unit-normal noise at the top prior and every split (the original's
    eps_std); it must be finite and >= 0 (0 gives the priors' means, the "mean" image).
    """
    if isinstance(temperature, (list, tuple, np.ndarray)):
        values = list(np.asarray(temperature, dtype=object).ravel())
        if len(values) != n_levels:
            raise ValueError(f"{len(values)} per-level temperatures {list(temperature)} given; the model has "
                             f"{n_levels} levels (give one number, or {n_levels}: split levels first, top last)")
    else:
        values = [temperature] * n_levels
    out = []
    for t in values:
        try:
            t = float(t)
        except (TypeError, ValueError):
            raise ValueError(f"temperature {t!r} is not a number") from None
        if not np.isfinite(t) or t < 0:
            raise ValueError(f"temperature {t} is invalid; expected a finite number >= 0 (it scales the "
                             f"standard deviation of the latent noise)")
        out.append(t)
    return tuple(out)


def temperature_scale(config, temperature):
    """float32 [D]: each latent dimension's temperature (per-level values repeated over the level)."""
    temps = check_temperature(temperature, config.n_levels)
    return np.concatenate([np.full(n, t, np.float32) for n, t in zip(eps_sizes(config), temps)])


def unit_eps(config, n, seed, start=0):
    """float32 [n, D] unit normals; sample i comes from np.random.default_rng([seed, start + i]), so a
    sample depends only on (seed, its index), not on n or the batch size."""
    seed = _check_seed(seed)
    d = sum(eps_sizes(config))
    return np.stack([np.random.default_rng([seed, start + i]).standard_normal(d, dtype=np.float32)
                     for i in range(n)]) if n else np.zeros((0, d), np.float32)


def sample_latents(config, n, temperature=1.0, seed=None, start=0):
    """The latents of n samples at a temperature: `temperature * unit_eps(config, n, seed, start)`."""
    return unit_eps(config, n, seed, start) * temperature_scale(config, temperature)


def random_seed():
    """A fresh seed (to record, so that a run can be repeated)."""
    return int(np.random.SeedSequence().entropy % 2 ** 31)


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r}; expected an integer >= 0")
    return int(seed)


# --- labels -----------------------------------------------------------------------------------------
def check_labels(config, y, n):
    """int32 [n] labels for the model: one class for all, or one per image; zeros for an
    unconditional model, which must not be given labels."""
    if not config.ycond:
        if y is not None:
            raise ValueError(f"class labels y={_short(y)} given, but this model is unconditional (ycond=False)")
        return np.zeros(n, np.int32)
    if y is None:
        raise ValueError(f"this model is class-conditional (ycond=True, n_y={config.n_y}): give a class "
                         f"0..{config.n_y - 1}, or one per image")
    arr = np.asarray(y)
    if arr.dtype.kind not in "iu" or arr.ndim > 1:
        raise ValueError(f"class labels must be integers (one, or [N]), got {_short(y)}")
    arr = np.broadcast_to(arr, (n,)) if arr.ndim == 0 else arr
    if len(arr) != n:
        raise ValueError(f"{len(arr)} class labels given for {n} images")
    bad = arr[(arr < 0) | (arr >= config.n_y)]
    if bad.size:
        raise ValueError(f"class {bad[0]} is out of range: the model has n_y={config.n_y} classes "
                         f"(0..{config.n_y - 1})")
    return arr.astype(np.int32)


def _short(value):
    text = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    return text if len(text) < 60 else text[:57] + "..."


# --- the model, compiled and batched ----------------------------------------------------------------
_COMPILED = weakref.WeakKeyDictionary()


def _compiled(glow):
    """(encode, decode) tf.functions of one model, traced once for any batch size."""
    if glow not in _COMPILED:
        cfg, ref = glow.config, weakref.ref(glow)  # a weak ref: the cache must not keep the model alive
        shape = [None, cfg.image_size, cfg.image_size, cfg.n_channels]
        labels = tf.TensorSpec([None], tf.int32)

        # autograph off: the model's Python control flow depends only on the config, and tracing is 2x faster
        @tf.function(autograph=False,
                     input_signature=[tf.TensorSpec(shape, tf.uint8), labels, tf.TensorSpec(shape, tf.float32)])
        def encode(x, y, noise):
            model = ref()
            return model.flatten_eps(model.encode(x, y if cfg.ycond else None, noise=noise))

        @tf.function(autograph=False, input_signature=[tf.TensorSpec([None, sum(eps_sizes(cfg))]), labels])
        def decode(eps, y):
            model = ref()
            x = model.decode(eps, y if cfg.ycond else None)
            return x, model.postprocess(x)

        _COMPILED[glow] = (encode, decode)
    return _COMPILED[glow]


def _batches(n, batch_size, progress, desc):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}; expected a positive integer")
    with tqdm(total=n, desc=desc, unit="img", disable=not progress or n <= batch_size, leave=False) as bar:
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            yield start, stop
            bar.update(stop - start)


def _check_images(config, images):
    images = np.asarray(images)
    want = (config.image_size, config.image_size, config.n_channels)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[1:] != want:
        raise ValueError(f"images have shape {images.shape}; this model expects [N, {', '.join(map(str, want))}] "
                         f"(image_size={config.image_size}, {config.n_channels} channels)")
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 pixels 0..255, got dtype {images.dtype}")
    return images


def dequantization_noise(config, n, mode="random", seed=None, start=0):
    """float32 [n, H, W, C] noise in [0, 1/n_bins), the original's dequantisation.

    mode "random": U(0, 1/n_bins) as the original's encode, fresh unless `seed` is given (then image
    i's noise comes from np.random.default_rng([seed, start + i]), independent of batching);
    mode "centre": the constant 0.5/n_bins, the bin centre (deterministic, and the farthest point
    from the bin edges, so reconstructions are robust to float round-off).
    """
    shape = (config.image_size, config.image_size, config.n_channels)
    high = np.float32(1.0 / config.n_bins)
    if mode == "centre":
        return np.full((n, *shape), high / 2, np.float32)
    if mode != "random":
        raise ValueError(f"noise={mode!r}; expected one of {NOISE_MODES} or an array of noise")
    if seed is None:
        return np.random.default_rng().random((n, *shape), dtype=np.float32) * high
    seed = _check_seed(seed)
    return np.stack([np.random.default_rng([seed, start + i]).random(shape, dtype=np.float32) * high
                     for i in range(n)]) if n else np.zeros((0, *shape), np.float32)


def encode(glow, images, y=None, noise="random", seed=None, batch_size=64, progress=False):
    """uint8 images [N, H, W, C] -> flat standardised latents float32 [N, D] (openai f_encode +
    flatten_eps).

    The input is dequantised as in the original: `noise` is "random" (U(0, 1/n_bins); repeatable with
    `seed`), "centre" (0.5/n_bins) or an array [N, H, W, C]; see `dequantization_noise`.
    """
    cfg = glow.config
    images = _check_images(cfg, images)
    y = check_labels(cfg, y, len(images))
    if not isinstance(noise, str):
        noise = np.asarray(noise, np.float32)
        if noise.shape != images.shape:
            raise ValueError(f"noise has shape {noise.shape}; expected the images' shape {images.shape}")
    encode_fn = _compiled(glow)[0]
    out = np.zeros((len(images), sum(eps_sizes(cfg))), np.float32)
    for a, b in _batches(len(images), batch_size, progress, "encode"):
        u = noise[a:b] if not isinstance(noise, str) else dequantization_noise(cfg, b - a, noise, seed, a)
        out[a:b] = encode_fn(images[a:b], y[a:b], u).numpy()
    return out


def decode(glow, eps, y=None, batch_size=64, progress=False, postprocess=True):
    """Latents (flat [N, D] or a list per level) -> uint8 images [N, H, W, C] (openai f_decode), or
    with `postprocess=False` the model-space floats in [-0.5, 0.5)."""
    cfg = glow.config
    flat = check_eps(cfg, eps)
    if isinstance(flat, list):
        flat = np.concatenate([e.reshape(len(e), -1) for e in flat], axis=1)
    y = check_labels(cfg, y, len(flat))
    decode_fn = _compiled(glow)[1]
    shape = (len(flat), cfg.image_size, cfg.image_size, cfg.n_channels)
    out = np.zeros(shape, np.uint8 if postprocess else np.float32)
    for a, b in _batches(len(flat), batch_size, progress, "decode"):
        x, pixels = decode_fn(flat[a:b], y[a:b])
        out[a:b] = (pixels if postprocess else x).numpy()
    return out


def sample(glow, n, temperature=1.0, y=None, seed=None, batch_size=64, progress=False, postprocess=True):
    """n samples at a temperature: `decode(sample_latents(config, n, temperature, seed))`.

    `temperature` is one number or one per level (split levels first, top last); it scales the
    unit-normal noise at the top prior and every split, never the means (openai f_sample's eps_std).
    Temperature 0 decodes all-zero eps: the prior means at every level, whatever the seed. Sample i
    depends only on (seed, i). With `seed=None` a fresh seed is used.
    """
    eps = sample_latents(glow.config, n, temperature, random_seed() if seed is None else seed)
    return decode(glow, eps, y, batch_size, progress, postprocess)


def reconstruct(glow, images, y=None, noise="random", seed=None, batch_size=64, progress=False):
    """`decode(encode(images))` as uint8: equal to the (bit-reduced) input, up to float round-off."""
    return decode(glow, encode(glow, images, y, noise, seed, batch_size, progress), y, batch_size, progress)


# --- interpolation and manipulation (demo/model.py) -------------------------------------------------
def mix(z1, z2, alpha):
    """`z1 + alpha * (z2 - z1)` (demo mix), computed as `(1 - alpha) * z1 + alpha * z2` so that
    alpha 0 and 1 give z1 and z2 exactly."""
    z1, z2 = np.asarray(z1, np.float32), np.asarray(z2, np.float32)
    if z1.shape != z2.shape:
        raise ValueError(f"cannot mix latents of shapes {z1.shape} and {z2.shape}")
    return np.float32(1 - alpha) * z1 + np.float32(alpha) * z2


def interpolate_latents(z1, z2, steps):
    """[steps, D]: `mix(z1, z2, alpha)` for alpha = linspace(0, 1, steps) (demo mix_range)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise ValueError(f"steps={steps!r}; expected an integer >= 2 (the two endpoints included)")
    z1, z2 = np.ravel(z1), np.ravel(z2)
    return np.stack([mix(z1, z2, a) for a in np.linspace(0.0, 1.0, steps)])


def interpolate(glow, image1, image2, steps=8, y=None, noise="random", seed=None, batch_size=64):
    """uint8 [steps, H, W, C]: encode both images, decode the linear path between their latents.

    The endpoints are the two images' reconstructions. For a class-conditional model `y` (one
    class) is used to encode and decode.
    """
    images = np.concatenate([_check_images(glow.config, image1), _check_images(glow.config, image2)])
    if len(images) != 2:
        raise ValueError(f"interpolate takes two single images, got {len(images)} images")
    z = encode(glow, images, None if y is None else [y, y], noise, seed, batch_size)
    return decode(glow, interpolate_latents(z[0], z[1], steps), None if y is None else y, batch_size)


def range_alphas(points=5, scale=1.0):
    """The alphas of the demo's manipulate_range(z, typ, points, scale): it decodes
    `z - dz + scale * (k / (points - 1)) * 2 dz`, i.e. alpha = -1 + 2 * scale * k / (points - 1),
    from -1 to +1 when scale is 1 (asymmetric otherwise, as in the demo)."""
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < 2:
        raise ValueError(f"points={points!r}; expected an integer >= 2")
    return -1.0 + 2.0 * float(scale) * np.arange(points) / (points - 1)


def manipulate(glow, z, direction, alphas, y=None, batch_size=64):
    """uint8 [len(alphas), H, W, C]: `decode(z + alpha * direction)` for each alpha (demo
    manipulate). `z` and `direction` are one flat latent [D]; alpha 0 is the reconstruction."""
    d = sum(eps_sizes(glow.config))
    z, direction = np.asarray(z, np.float32), np.asarray(direction, np.float32)
    for name, v in (("latent z", z), ("direction", direction)):
        if v.size != d or (v.ndim == 2 and v.shape[0] != 1) or v.ndim > 2:
            raise ValueError(f"{name} has shape {v.shape}; this model expects one flat latent of {d} values")
    alphas = np.atleast_1d(np.asarray(alphas, np.float32))
    if alphas.ndim != 1 or not np.isfinite(alphas).all():
        raise ValueError(f"alphas must be a finite list of numbers, got {_short(alphas)}")
    return decode(glow, z.reshape(1, d) + alphas[:, None] * direction.reshape(1, d), y, batch_size)


# --- attribute directions (demo/get_manipulators.py) ------------------------------------------------
class AttributeMeans:
    """Running means of latents with and without each of A attributes, to get attribute directions
    from a stream of batches without keeping every latent (get_manipulators.py holds them all).

    Labels are [B, A] with 1 = has the attribute and -1 or 0 = has not (CelebA's ±1, or 0/1).
    """

    def __init__(self, n_dims, names):
        self.names = [str(n) for n in names]
        a = len(self.names)
        self.sum_with, self.sum_without = np.zeros((a, n_dims)), np.zeros((a, n_dims))
        self.n_with, self.n_without = np.zeros(a, np.int64), np.zeros(a, np.int64)

    def update(self, z, labels):
        z = np.asarray(z, np.float64)
        labels = np.asarray(labels)
        if labels.ndim == 1:
            labels = labels[:, None]
        if z.ndim != 2 or z.shape[1] != self.sum_with.shape[1] or labels.shape != (len(z), len(self.names)):
            raise ValueError(f"expected latents [B, {self.sum_with.shape[1]}] and labels [B, {len(self.names)}], "
                             f"got {z.shape} and {labels.shape}")
        bad = ~np.isin(labels, (-1, 0, 1))
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise ValueError(f"label {labels[i, j].item()!r} for attribute {self.names[j]!r}; expected 1 (has it) or "
                             f"-1 / 0 (has not)")
        with_ = (labels == 1).astype(np.float64)
        self.sum_with += with_.T @ z
        self.sum_without += (1 - with_).T @ z
        self.n_with += with_.sum(0).astype(np.int64)
        self.n_without += (1 - with_).sum(0).astype(np.int64)

    def directions(self, scale=DEMO_SCALE):
        """float32 [A, D]: `scale * (mean(z | attribute) - mean(z | not attribute))`."""
        for name, a, b in zip(self.names, self.n_with, self.n_without):
            if a == 0 or b == 0:
                raise ValueError(f"attribute {name!r} has {a} images with it and {b} without; a direction "
                                 f"needs at least one of each")
        means_with = self.sum_with / self.n_with[:, None]
        means_without = self.sum_without / self.n_without[:, None]
        return (float(scale) * (means_with - means_without)).astype(np.float32)


def attribute_direction(z, labels, scale=DEMO_SCALE):
    """`scale * (mean(z[labels == 1]) - mean(z[labels != 1]))` (get_manipulators.get_manipulator, with
    the demo's scale 1.6): labels [N] give one direction [D], labels [N, A] give [A, D]."""
    z, labels = np.asarray(z), np.asarray(labels)
    if z.ndim != 2 or len(labels) != len(z):
        raise ValueError(f"expected latents [N, D] and labels [N] or [N, A], got {z.shape} and {labels.shape}")
    single = labels.ndim == 1
    labels = labels[:, None] if single else labels
    means = AttributeMeans(z.shape[1], [str(i) for i in range(labels.shape[1])])
    means.update(z, labels)
    out = means.directions(scale)
    return out[0] if single else out


def save_directions(path, directions, names, scale=DEMO_SCALE, n_with=None, n_without=None):
    """Writes directions [A, D] with their names (and the scale and counts used) to an .npz."""
    directions = np.asarray(directions, np.float32)
    names = [str(n) for n in names]
    if directions.ndim != 2 or len(names) != len(directions):
        raise ValueError(f"expected directions [A, D] and A names, got {directions.shape} and {len(names)} names")
    extra = {k: np.asarray(v) for k, v in (("n_with", n_with), ("n_without", n_without)) if v is not None}
    _atomic_npz(path, directions=directions, names=np.asarray(names), scale=np.float32(scale), **extra)


def load_directions(path, n_dims=None):
    """{name: direction [D]} from `save_directions`' .npz, or from a bare .npy [A, D] such as the
    demo's z_manipulate.npy (named by CELEBA_ATTRIBUTES when A = 40, else "0", "1", ...).

    With `n_dims`, directions of another size are an error (they belong to another model).
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"no directions file {path!r}")
    data = np.load(path, allow_pickle=False)
    if isinstance(data, np.ndarray):
        directions = data if data.ndim == 2 else data.reshape(1, -1)
        names = CELEBA_ATTRIBUTES if len(directions) == 40 else [str(i) for i in range(len(directions))]
    else:
        if "directions" not in data:
            raise ValueError(f"{path!r} holds no 'directions' array (keys: {sorted(data.files)})")
        directions = data["directions"]
        names = [str(n) for n in data["names"]] if "names" in data else [str(i) for i in range(len(directions))]
    if n_dims is not None and directions.shape[-1] != n_dims:
        raise ValueError(f"directions in {path!r} have {directions.shape[-1]} dimensions; this model's latents "
                         f"have {n_dims}")
    return {name: np.asarray(d, np.float32) for name, d in zip(names, directions)}


def pick_direction(directions, attribute):
    """The direction named `attribute` (or at index `attribute`) in a `load_directions` dict."""
    names = list(directions)
    if attribute in directions:
        return directions[attribute]
    if str(attribute).isdigit() and int(attribute) < len(names):
        return directions[names[int(attribute)]]
    raise ValueError(f"no direction {attribute!r}; available: {', '.join(names)}")


# --- latent files -----------------------------------------------------------------------------------
def _atomic_npz(path, **arrays):
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def save_latents(path, config, eps, y=None, **arrays):
    """Writes latents to an .npz: `eps` [N, D] (flat) and `eps_0` ... `eps_{L-1}` (per level, the
    original's order), `y` [N] for a class-conditional model, and any further named arrays."""
    flat = check_eps(config, eps)
    if isinstance(flat, list):
        flat = flatten_eps(config, flat)
    per_level = {f"eps_{i}": e for i, e in enumerate(unflatten_eps(config, flat))}
    if y is not None:
        arrays["y"] = check_labels(config, y, len(flat))
    _atomic_npz(path, eps=flat, **per_level, **arrays)


def load_latents(path, config):
    """(flat latents [N, D], labels [N] or None) from `save_latents`' .npz (its `eps`, else its
    `eps_0..eps_{L-1}`) or from a bare .npy [N, D] such as the original's `--inference` z.npy."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no latents file {path!r}")
    data = np.load(path, allow_pickle=False)
    y = None
    if isinstance(data, np.ndarray):
        eps = data
    elif "eps" in data:
        eps = data["eps"]
    elif "eps_0" in data:
        eps = [data[f"eps_{i}"] for i in range(len(data.files)) if f"eps_{i}" in data]
    else:
        raise ValueError(f"{path!r} holds no latents: expected an 'eps' array or 'eps_0', 'eps_1', ... "
                         f"(keys: {sorted(data.files)})")
    if not isinstance(data, np.ndarray) and "y" in data:
        y = data["y"]
    try:
        flat = check_eps(config, eps)
    except ValueError as e:
        raise ValueError(f"{path!r}: {e}") from None
    return (flatten_eps(config, flat) if isinstance(flat, list) else flat), y


# --- labels for directions --------------------------------------------------------------------------
def read_label_csv(path, attributes=None):
    """(filenames, attribute names, labels int [N, A]) from a CSV whose header is a file-name column
    then one column per attribute (e.g. CelebA's `image_id,5_o_Clock_Shadow,...`), values ±1 or 0/1.

    `attributes` (names or column indices) selects columns; default all.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"no labels file {path!r}")
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f, skipinitialspace=True) if r and any(c.strip() for c in r)]
    if len(rows) < 2 or len(rows[0]) < 2:
        raise ValueError(f"{path!r} must have a header (filename, then attribute names) and at least one row")
    header = [h.strip() for h in rows[0]]
    columns = select_attributes(header[1:], attributes, path)
    files, labels = [], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"{path!r} line {line} has {len(row)} columns; the header has {len(header)}")
        try:
            values = [int(row[1 + j].strip()) for j in columns]
        except ValueError:
            raise ValueError(f"{path!r} line {line}: labels must be integers -1, 0 or 1, got "
                             f"{[row[1 + j] for j in columns]}") from None
        if any(v not in (-1, 0, 1) for v in values):
            raise ValueError(f"{path!r} line {line}: labels must be -1, 0 or 1, got {values}")
        files.append(row[0].strip())
        labels.append(values)
    return files, [header[1 + j] for j in columns], np.asarray(labels, np.int32)


def select_attributes(names, attributes, source="the labels"):
    """Column indices of `attributes` (names or indices) among `names`; all columns when None."""
    if attributes is None:
        return list(range(len(names)))
    out = []
    for a in attributes:
        if a in names:
            out.append(names.index(a))
        elif str(a).isdigit() and int(a) < len(names):
            out.append(int(a))
        else:
            raise ValueError(f"no attribute {a!r} in {source}; available: {', '.join(names)}")
    return out


def tfrecord_files(paths):
    """Sorted TFRecord files from files, glob patterns or folders (their *.tfrecords)."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    found = []
    for item in map(os.fspath, items):
        if os.path.isdir(item):
            matches = sorted(glob.glob(os.path.join(item, "*.tfrecords")))
        else:
            matches = sorted(glob.glob(item)) if glob.has_magic(item) else ([item] if os.path.isfile(item) else [])
        if not matches:
            raise FileNotFoundError(f"no TFRecord files at {item!r}")
        found.extend(matches)
    return found


def read_celeba_tfrecords(paths, batch_size=64, max_images=None):
    """Yields (images uint8 [B, H, W, 3], attr int [B, 40]) from TFRecords in the original's format.

    Records hold `shape` (int64 [3], HWC), `data` (raw uint8 HWC bytes), `label` and, for CelebA,
    `attr` (40 int64, ±1 in CELEBA_ATTRIBUTES order); openai data_loaders/get_data.py parses all but
    `attr`. Files are read in sorted order, unshuffled.
    """
    files = tfrecord_files(paths)
    spec = {"shape": tf.io.FixedLenFeature([3], tf.int64), "data": tf.io.FixedLenFeature([], tf.string),
            "attr": tf.io.FixedLenFeature([len(CELEBA_ATTRIBUTES)], tf.int64)}

    def parse(record):
        f = tf.io.parse_single_example(record, spec)
        return tf.reshape(tf.io.decode_raw(f["data"], tf.uint8), f["shape"]), f["attr"]

    ds = tf.data.TFRecordDataset(files)
    if max_images is not None:
        ds = ds.take(int(max_images))
    ds = ds.map(parse).batch(batch_size)
    try:
        for images, attr in ds:
            yield images.numpy(), attr.numpy()
    except tf.errors.InvalidArgumentError as e:
        raise ValueError(f"TFRecords {files[0]!r}...: records must hold 'shape', 'data' and 40 'attr' values "
                         f"(the CelebA records of openai/glow); {e.message.splitlines()[0]}") from None
