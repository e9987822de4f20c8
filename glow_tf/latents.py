"""The flat latent layout, temperatures, seeds, labels, dequantisation noise and latent files: the
NumPy side of the `Glow` public methods (no TensorFlow here).

A latent is the original's flat `eps` (demo/model.py flatten_eps): per level the standardised latent
`(z - mean) / exp(logs)`, flattened row-major (NHWC), levels concatenated in the original's order
(split levels 0..L-2, then the top prior); float32 [N, D] with D = H * W * C. Seeds are integers
>= 0; draw i of a seeded call comes from `np.random.default_rng([seed, start + i])`, so it depends on
(seed, i) only, never on N or the batch size.
"""
import os

import numpy as np

from glow_tf.io import atomic_path

NOISE_MODES = ("random", "centre")


# --- the flat latent layout -------------------------------------------------------------------------
def eps_sizes(config):
    """Number of latent dimensions per level, in the original's order (splits, then the top)."""
    return [int(np.prod(s)) for s in config.eps_shapes]


def flatten_eps(config, eps):
    """A list of per-level eps [N, h, w, c] -> flat [N, D] (openai demo/model.py flatten_eps)."""
    return np.concatenate([e.reshape(len(e), -1) for e in check_latents(config, list(eps))], axis=1)


def unflatten_eps(config, flat):
    """Flat [N, D] -> the list of per-level eps [N, h, w, c] (openai demo/model.py unflatten_eps)."""
    flat = check_latents(config, flat)
    parts = np.split(flat, np.cumsum(eps_sizes(config))[:-1], axis=1)
    return [p.reshape(len(p), *s) for p, s in zip(parts, config.eps_shapes)]


def as_flat(config, latents):
    """Checked flat float32 [N, D] from flat latents ([D] or [N, D]) or a list of per-level arrays."""
    flat = check_latents(config, latents)
    return np.concatenate([e.reshape(len(e), -1) for e in flat], axis=1) if isinstance(flat, list) else flat


def check_latents(config, eps):
    """Validates latents for this model: flat [N, D] (or one [D]) or a list of per-level arrays;
    returns them as float32 in the same form. Finite values only."""
    shapes, d = [tuple(s) for s in config.eps_shapes], config.n_dims
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


# --- temperature and seeds --------------------------------------------------------------------------
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


def check_seed(seed):
    """An integer seed >= 0 (a bool or a float is refused)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r}; expected an integer >= 0")
    return int(seed)


def random_seed():
    """A fresh seed (to record, so that a run can be repeated)."""
    return int(np.random.SeedSequence().entropy % 2 ** 31)


def _per_draw(seed, n, start, shape, draw):
    """float32 [n, *shape]: `draw(np.random.default_rng([seed, start + i]))` for i < n."""
    seed = check_seed(seed)
    if not n:
        return np.zeros((0, *shape), np.float32)
    return np.stack([draw(np.random.default_rng([seed, start + i])) for i in range(n)])


def unit_eps(config, n, seed, start=0):
    """float32 [n, D] unit normals, draw i from `default_rng([seed, start + i])`."""
    return _per_draw(seed, n, start, (config.n_dims,),
                     lambda rng: rng.standard_normal(config.n_dims, dtype=np.float32))


def sample_latents(config, n, temperature=1.0, seed=None, start=0):
    """The latents of n samples: `temperature * unit_eps(config, n, seed, start)` (the original's
    f_sample draws eps ~ N(0, eps_std^2) at every level); a fresh seed when `seed` is None."""
    seed = random_seed() if seed is None else seed
    return unit_eps(config, n, seed, start) * temperature_scale(config, temperature)


def dequantization_noise(config, n, mode="random", seed=None, start=0):
    """float32 [n, H, W, C] noise in [0, 1/n_bins), the original's dequantisation.

    mode "random": U(0, 1/n_bins) as the original's encode, fresh unless `seed` is given (then image
    i's noise comes from `default_rng([seed, start + i])`); mode "centre": the constant 0.5/n_bins,
    the bin centre (deterministic, and the farthest point from the bin edges, so reconstructions
    are robust to float round-off).
    """
    shape = (config.image_size, config.image_size, config.n_channels)
    high = np.float32(1.0 / config.n_bins)
    if mode == "centre":
        return np.full((n, *shape), high / 2, np.float32)
    if mode != "random":
        raise ValueError(f"noise={mode!r}; expected one of {NOISE_MODES} or an array of noise")
    if seed is None:
        return np.random.default_rng().random((n, *shape), dtype=np.float32) * high
    return _per_draw(seed, n, start, shape, lambda rng: rng.random(shape, dtype=np.float32) * high)


# --- inputs -----------------------------------------------------------------------------------------
def check_images(config, images):
    """uint8 [N, H, W, C] (one [H, W, C] image is taken as N = 1) of this model's size."""
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


def check_labels(config, y, n):
    """int32 [n]: the class labels `y` of n images, checked by the package's one rule set for labels (the
    model's methods, the latent tools' command line and the demo's API all call it):

    - an unconditional model (ycond=False) takes no labels: y must be None (the zeros returned are what
      the compiled functions are fed);
    - a class-conditional model needs them: one class for all n images, or one per image ([n]);
    - a class is an integer (not a bool, not a float, not even 3.0) in 0..n_y-1.

    Each violation is one ValueError naming the bad value and what was expected.
    """
    if not config.ycond:
        if y is not None:
            raise ValueError(f"class labels y={short(y)} given, but this model is unconditional (ycond=False); "
                             f"expected no labels")
        return np.zeros(n, np.int32)
    if y is None:
        raise ValueError(f"this model is class-conditional (ycond=True, n_y={config.n_y}): pass the labels y, "
                         f"one class 0..{config.n_y - 1} for all images, or one per image")
    arr = np.asarray(y)
    check_label_type(config, arr.dtype, arr.shape, n, y)
    arr = np.broadcast_to(arr, (n,)) if arr.ndim == 0 else arr
    bad = arr[(arr < 0) | (arr >= config.n_y)]
    if bad.size:
        raise ValueError(f"class {bad[0]} is out of range: the model has n_y={config.n_y} classes "
                         f"(0..{config.n_y - 1})")
    return arr.astype(np.int32)


def check_label_type(config, dtype, shape, n, y=None):
    """The part of `check_labels`' rules that the type alone shows: integer classes, one or [n] of them.

    For labels whose values are not known yet (a tensor inside tf.function): `dtype` a NumPy dtype,
    `shape` a tuple whose entries may be None (unknown), `n` the number of images or None.
    """
    what = "y" if y is None else f"y={short(y)}"
    if np.dtype(dtype).kind not in "iu":
        raise ValueError(f"class labels {what} are {np.dtype(dtype).name}; expected integer classes 0..{config.n_y - 1}")
    if shape is not None and len(shape) > 1:
        raise ValueError(f"class labels {what} have shape {tuple(shape)}; expected one class for all images, "
                         f"or one per image [N]")
    if shape is not None and len(shape) == 1 and None not in (shape[0], n) and shape[0] != n:
        raise ValueError(f"{shape[0]} class labels given for {n} images; expected one class for all images, "
                         f"or one per image")


def check_count(value, name, minimum):
    """An integer >= minimum (a bool is refused), for counts such as steps, points and batch sizes."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r}; expected an integer >= {minimum}")
    return int(value)


def short(value):
    """repr of a value for an error message, cut to 60 characters."""
    text = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    return text if len(text) < 60 else text[:57] + "..."


# --- latent arithmetic (demo/model.py) --------------------------------------------------------------
def mix(z1, z2, alphas):
    """[K, D]: `z1 + alpha * (z2 - z1)` for each alpha (the demo's mix), computed as
    `(1 - alpha) * z1 + alpha * z2` so that alpha 0 and 1 give z1 and z2 exactly."""
    z1, z2 = np.ravel(np.asarray(z1, np.float32)), np.ravel(np.asarray(z2, np.float32))
    if z1.shape != z2.shape:
        raise ValueError(f"cannot mix latents of {z1.size} and {z2.size} values")
    alphas = check_alphas(alphas, 1)[:, 0]
    return (1 - alphas)[:, None] * z1 + alphas[:, None] * z2


def check_alphas(alphas, n_directions):
    """float32 [K, A]: K combinations of A coefficients, from a number, [K] (A = 1) or [A] when the
    directions are several (one combination), or [K, A]."""
    a = np.asarray(alphas, np.float32)
    if a.ndim == 0:
        a = a.reshape(1, 1)
    elif a.ndim == 1:
        a = a[:, None] if n_directions == 1 else a[None]
    if a.ndim != 2 or a.shape[1] != n_directions or not len(a) or not np.isfinite(a).all():
        raise ValueError(f"alphas {short(alphas)}: expected finite numbers, [K] for one direction or [K, "
                         f"{n_directions}] (one coefficient per direction in each of K combinations)")
    return a


# --- latent files -----------------------------------------------------------------------------------
def save_npz(path, **arrays):
    """np.savez, atomically."""
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def save_latents(path, config, eps, y=None, **arrays):
    """Writes latents to an .npz: `eps` [N, D] (flat) and `eps_0` ... `eps_{L-1}` (per level, the
    original's order), `y` [N] for a class-conditional model, and any further named arrays."""
    flat = as_flat(config, eps)
    per_level = {f"eps_{i}": e for i, e in enumerate(unflatten_eps(config, flat))}
    if y is not None:
        arrays["y"] = check_labels(config, y, len(flat))
    save_npz(path, eps=flat, **per_level, **arrays)


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
        return as_flat(config, eps), y
    except ValueError as e:
        raise ValueError(f"{path!r}: {e}") from None
