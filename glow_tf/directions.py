"""Attribute directions in latent space (openai demo/get_manipulators.py and demo/model.py): the mean
latent with an attribute minus the mean latent without it, times 1.6; moving latents along several
directions at once; projecting onto them; their .npz files and the label CSVs they are made from.

Latents are the flat float32 [N, D] of glow_tf.latents; a direction is [D], several are [A, D].
"""
import csv
import os

import numpy as np

from data_loaders.celeba import CELEBA_ATTRIBUTES  # noqa: F401 (the directions' order; re-exported)
from glow_tf.io import atomic_path
from glow_tf.latents import check_alphas, check_count, save_npz

DEMO_SCALE = 1.6  # demo/get_manipulators.py: z_manipulate = 1.6 * (mean with - mean without)

# demo/model.py corrects its z_manipulate.npy when loading it: these two point the wrong way (their
# slider moves towards "beard" and "old"), and Narrow_Eyes is too weak.
DEMO_FLIPPED = ("No_Beard", "Young")
DEMO_SCALED = {"Narrow_Eyes": 1.2}


# --- moving along directions and projecting onto them (demo/model.py) -------------------------------
def check_directions(directions, n_dims):
    """float32 [A, D] from one direction [D] or several [A, D] of n_dims values each."""
    d = np.asarray(directions, np.float32)
    d = d[None] if d.ndim == 1 else d
    if d.ndim != 2 or d.shape[1] != n_dims or not len(d):
        raise ValueError(f"directions have shape {np.shape(directions)}; this model expects one direction "
                         f"[{n_dims}] or several [A, {n_dims}]")
    if not np.isfinite(d).all():
        raise ValueError("directions contain NaN or infinite values")
    return d


def move(latents, directions, alphas):
    """float32 [N, K, D]: `z + sum_a alphas[k, a] * directions[a]` for each latent z [N, D] and each
    of K combinations of coefficients (the demo's manipulate, and manipulate_all for several
    directions, which also sums `alpha_a * d_a` first and then adds it to z).

    `alphas` is [K] for one direction, [A] for one combination of A directions, or [K, A].
    """
    z = np.asarray(latents, np.float32)
    directions = check_directions(directions, z.shape[-1])
    alphas = check_alphas(alphas, len(directions))
    dz = np.zeros((len(alphas), directions.shape[1]), np.float32)
    for a in range(len(directions)):
        dz += alphas[:, a:a + 1] * directions[a]
    return z.reshape(-1, 1, z.shape[-1]) + dz


def project(latents, directions):
    """float32 [N, A]: `z . d / |d|^2`, the coefficient of each direction in each latent (the demo's
    project, `z @ (z_manipulate / |z_manipulate|^2).T`), so that `move(z, d, -project(z, d))` has
    no component along d."""
    z = np.asarray(latents, np.float32)
    directions = check_directions(directions, z.shape[-1])
    norms = np.sum(directions ** 2, axis=1)
    if not norms.all():
        raise ValueError(f"direction {int(np.argmin(norms))} is all zeros; it has no projection")
    return z.reshape(-1, z.shape[-1]) @ (directions / norms[:, None]).T


def range_alphas(points=5, scale=1.0):
    """The alphas of the demo's manipulate_range(z, typ, points, scale): it decodes
    `z - dz + scale * (k / (points - 1)) * 2 dz`, i.e. alpha = -1 + 2 * scale * k / (points - 1),
    from -1 to +1 when scale is 1 (asymmetric otherwise, as in the demo)."""
    points = check_count(points, "points", 2)
    return -1.0 + 2.0 * float(scale) * np.arange(points) / (points - 1)


# --- directions from labelled latents (demo/get_manipulators.py) ------------------------------------
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


# --- directions files -------------------------------------------------------------------------------
def save_directions(path, directions, names, scale=DEMO_SCALE, n_with=None, n_without=None):
    """Writes directions [A, D] with their names (and the scale and counts used) to an .npz."""
    directions = np.asarray(directions, np.float32)
    names = [str(n) for n in names]
    if directions.ndim != 2 or len(names) != len(directions):
        raise ValueError(f"expected directions [A, D] and A names, got {directions.shape} and {len(names)} names")
    extra = {k: np.asarray(v) for k, v in (("n_with", n_with), ("n_without", n_without)) if v is not None}
    save_npz(path, directions=directions, names=np.asarray(names), scale=np.float32(scale), **extra)


def save_z_manipulate(path, directions):
    """Writes directions [40, D] as get_manipulators.py saves z_manipulate.npy: a bare float32 array, CelebA's
    40 attributes in CELEBA_ATTRIBUTES order, none flipped (load_directions applies the demo's corrections)."""
    directions = np.asarray(directions, np.float32)
    if directions.ndim != 2 or len(directions) != len(CELEBA_ATTRIBUTES):
        raise ValueError(f"z_manipulate.npy holds CelebA's 40 directions [40, D]; got shape {directions.shape}")
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, directions)


def load_directions(path, n_dims=None):
    """{name: direction [D]} from `save_directions`' .npz, or from a bare .npy [A, D] such as the
    demo's z_manipulate.npy (named by CELEBA_ATTRIBUTES when A = 40, else "0", "1", ...). A bare
    [40, D] gets the corrections demo/model.py applies at load time: No_Beard and Young negated,
    Narrow_Eyes times 1.2 (DEMO_FLIPPED, DEMO_SCALED).

    With `n_dims`, directions of another size are an error (they belong to another model).
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"no directions file {path!r}")
    data = np.load(path, allow_pickle=False)
    if isinstance(data, np.ndarray):
        directions = data if data.ndim == 2 else data.reshape(1, -1)
        names = CELEBA_ATTRIBUTES if len(directions) == 40 else [str(i) for i in range(len(directions))]
        if len(directions) == 40:
            directions = np.array(directions, np.float32)
            for name in DEMO_FLIPPED:
                directions[CELEBA_ATTRIBUTES.index(name)] *= -1
            for name, factor in DEMO_SCALED.items():
                directions[CELEBA_ATTRIBUTES.index(name)] *= factor
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
    return directions[names[select_attributes(names, [attribute], "the directions")[0]]]


# --- labels for directions --------------------------------------------------------------------------
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
