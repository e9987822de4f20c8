"""What `python -m glow_tf serve` prepares once at start-up: the run's training flags, its example
images and, for runs with class labels, one direction per class; for face models the attribute
sliders' order and their names on the page.

Examples: photos from `--examples DIR` when given (faces aligned for face models); else the first test
images of the run's own data when that data is local (digits, a folder, MNIST / CIFAR-10 given a
--data_dir, and for `--problem celeba` the held-out faces of its CelebA folder); otherwise the model's own
samples at temperature 0.7.

Face models (a run trained with --problem celeba, the celeba256 configuration included, or OpenAI's
graph with --graph): CelebA attribute directions are shown in FACE_ORDER and in the original demo's
sense (demo/model.py negates No_Beard and Young and scales Narrow_Eyes by 1.2 in every z_manipulate.npy
it loads; `directions.load_directions` does so for a bare .npy, and the demo does it here for the
.npz files of `python -m glow_tf direction`, whose directions are get_manipulators' as computed), so
the slider "Beard" adds a beard and "Age" ages, as on the original page.

Class directions: for a run whose data has labels (digits, MNIST, CIFAR-10, a folder of class
sub-folders), "class c" = mean latent of the test images of class c minus the mean latent of the
others (`directions.AttributeMeans` with one-hot labels, scale 1: alpha 1 moves the mean of the
other classes onto class c's). They are computed once per checkpoint and cached in
RUN/demo/class_directions.npz, a directions file like any other (`manipulate --directions` reads it).
"""
import json
import logging
import os

import numpy as np
from PIL import Image

import data_loaders
from glow_tf import directions as direction_ops
from glow_tf import images as img
from glow_tf.io import atomic_path

LOCAL_PROBLEMS = ("digits", "digits_4bit", "folder")  # read from disk with no download
LABELLED_PROBLEMS = ("digits", "digits_4bit", "folder", "mnist", "cifar10")
MAX_CLASS_IMAGES = 2000
FACE_PROBLEMS = ("celeba",)  # train.py problems whose runs are face models (configs/celeba256.py's too)
# The attribute sliders of a face model, the ones that matter first: the five sliders of the original demo's
# page (demo/web/glowDemo.js: Smiling, "Age" = Young, Narrow Eyes, "Blonde Hair", "Beard" = No_Beard, in
# that order), then the other attributes of the Glow paper's manipulation figure (Pale Skin, Male) and of
# the announcement's (Eyeglasses), then hair and other attributes a person sees at a glance; the rest
# follow in CelebA's order.
FACE_ORDER = ("Smiling", "Young", "Narrow_Eyes", "Blond_Hair", "No_Beard", "Pale_Skin", "Male", "Eyeglasses",
              "Black_Hair", "Bald", "Wavy_Hair", "Bangs", "Gray_Hair", "Heavy_Makeup", "Mustache", "Wearing_Hat",
              "Wearing_Lipstick", "Brown_Hair", "Straight_Hair", "Goatee")
# what the page calls a direction in the demo's sense (the original page's words for the flipped two)
FACE_LABELS = {"Young": "Age", "No_Beard": "Beard", "5_o_Clock_Shadow": "5 o'Clock Shadow"}
_log = logging.getLogger("glow_tf.demo")


def run_flags(logdir):
    """The flags a train.py run was started with (train.txt's first line), or {} when absent."""
    path = os.path.join(logdir, "train.txt") if logdir and os.path.isdir(logdir) else None
    if not path or not os.path.exists(path):
        return {}
    with open(path) as f:
        line = f.readline()
    try:
        flags = json.loads(line)
    except json.JSONDecodeError:
        return {}
    return flags if isinstance(flags, dict) else {}


def run_test_data(flags, config, data_dir=None):
    """(uint8 test images, int labels) of the run's problem when it is readable without a download,
    else None. `data_dir` overrides the run's own --data_dir."""
    problem = flags.get("problem")
    data_dir = flags.get("data_dir", "") if data_dir is None else data_dir
    if problem not in LABELLED_PROBLEMS or (problem not in LOCAL_PROBLEMS and not data_dir):
        return None
    data = data_loaders.get_data(problem, data_dir=data_dir, image_size=config.image_size, dal=0)
    x, y = data.test_arrays()
    if x.shape[-1] != config.n_channels:
        return None
    return x, y.astype(np.int32)


def class_directions(glow, x, y, cache_dir, checkpoint, batch_size=64):
    """{"class c": direction} from labelled images (see the module docstring), cached per checkpoint."""
    cfg = glow.config
    n_y = cfg.n_y if cfg.ycond else int(y.max()) + 1
    x, y = x[:MAX_CLASS_IMAGES], y[:MAX_CLASS_IMAGES]
    names = [f"class {c}" for c in range(n_y)]
    cache = os.path.join(cache_dir, "class_directions.npz") if cache_dir else None
    stamp = os.path.join(cache_dir, "class_directions.checkpoint") if cache_dir else None
    if cache and os.path.exists(cache) and os.path.exists(stamp):
        with open(stamp) as f:
            if f.read().strip() == f"{os.path.basename(checkpoint)} {len(x)}":
                found = direction_ops.load_directions(cache, cfg.n_dims)
                if list(found) == names:
                    return found
    present = [c for c in range(n_y) if np.any(y == c) and not np.all(y == c)]
    if not present:
        return {}
    z = glow.encode(x, y if cfg.ycond else None, noise="centre", batch_size=batch_size)
    onehot = (y[:, None] == np.asarray(present)[None]).astype(np.int32)
    means = direction_ops.AttributeMeans(cfg.n_dims, [names[c] for c in present])
    means.update(z, onehot)
    found = dict(zip(means.names, means.directions(scale=1.0)))
    if cache:
        try:
            os.makedirs(cache_dir, exist_ok=True)
            direction_ops.save_directions(cache, np.stack(list(found.values())), list(found), 1.0,
                                          means.n_with, means.n_without)
            with atomic_path(stamp) as tmp, open(tmp, "w") as f:
                f.write(f"{os.path.basename(checkpoint)} {len(x)}\n")
        except OSError as e:
            _log.warning("could not cache the class directions in %s: %s", cache_dir, e)
    return found


def is_face_model(flags, graph=False):
    """Whether the served model is a face model: OpenAI's graph, or a run of a face problem."""
    return bool(graph) or flags.get("problem") in FACE_PROBLEMS


def face_directions(found, path):
    """CelebA attribute directions in FACE_ORDER (others after them, in their order) and in the original
    demo's sense (module docstring): those of a directions .npz get demo/model.py's corrections, which
    `load_directions` has already applied to a bare z_manipulate.npy."""
    if path and not isinstance(np.load(path, allow_pickle=False), np.ndarray):
        found = dict(found)
        for name in direction_ops.DEMO_FLIPPED:
            if name in found:
                found[name] = -found[name]
        for name, factor in direction_ops.DEMO_SCALED.items():
            if name in found:
                found[name] = found[name] * np.float32(factor)
    rank = {name: i for i, name in enumerate(FACE_ORDER)}
    rest = {name: len(FACE_ORDER) + i for i, name in enumerate(direction_ops.CELEBA_ATTRIBUTES)}
    order = sorted(found, key=lambda n: (rank.get(n, rest.get(n, len(FACE_ORDER) + 40)), list(found).index(n)))
    return {name: found[name] for name in order}


def face_labels(names):
    """{name: what the page shows} of the CelebA attributes among `names` (underscores become spaces)."""
    return {n: FACE_LABELS.get(n, n.replace("_", " ")) for n in names if n in direction_ops.CELEBA_ATTRIBUTES}


def celeba_examples(flags, config, data_dir=None, n=8):
    """The first n held-out faces (the test stream: list_eval_partition's 1 rows, or the last 10%) of a
    --problem celeba run's folder, cropped and resized as in training; None when the folder is not there."""
    from data_loaders import celeba  # noqa: PLC0415

    folder = flags.get("data_dir", "") if data_dir is None else data_dir
    if flags.get("problem") != "celeba" or not celeba.is_celeba_folder(folder):
        return None
    data = celeba.CelebAFolder(folder)
    paths, _ = data.split_files("valid")
    return data.load(paths[:n], config.image_size) if paths else None


def folder_examples(folder, config, align=False, n=8):
    """Up to n photos of `folder` (sorted by name) as the model's input: aligned on their eyes when `align`
    (photos without a face found are centre-cropped as they are), then centre-cropped and resized."""
    paths = img.list_images(folder)[:n]
    out = []
    for path in paths:
        try:
            with Image.open(path) as pil:
                pil = pil.convert("L" if config.n_channels == 1 else "RGB")
        except (OSError, SyntaxError, ValueError) as e:
            raise ValueError(f"--examples: cannot read {path!r}: {e}") from None
        if align and config.n_channels == 3:
            from glow_tf.demo.align import align_face  # noqa: PLC0415

            face = align_face(np.asarray(pil))
            pil = pil if face is None else Image.fromarray(face)
        x = img.centre_crop_resize(pil, config.image_size)
        out.append(x[..., None] if x.ndim == 2 else x)
    return np.stack(out)


def prepare(glow, logdir=None, checkpoint="", directions_file=None, data_dir=None, n_examples=8,
            class_dirs=True, batch_size=64, face=None, examples_dir=None):
    """(directions {name: [D]}, examples uint8 [N, H, W, C], their labels or None, the run's flags).
    `face` (default: from the run's problem) orders and orients attribute directions as the face demo's;
    `examples_dir` gives the examples (see the module docstring)."""
    cfg = glow.config
    flags = run_flags(logdir)
    face = is_face_model(flags) if face is None else face
    found = {}
    if directions_file:
        found.update(direction_ops.load_directions(directions_file, cfg.n_dims))
        if face:
            found = face_directions(found, directions_file)
    if examples_dir:
        examples = folder_examples(examples_dir, cfg, align=face, n=n_examples)
        labels = (np.arange(len(examples)) % cfg.n_y).astype(np.int32) if cfg.ycond else None
        return found, examples, labels, flags
    faces = celeba_examples(flags, cfg, data_dir, n_examples) if face else None
    data = None if faces is not None else run_test_data(flags, cfg, data_dir)
    if faces is not None:
        examples, labels = faces, (np.zeros(len(faces), np.int32) if cfg.ycond else None)
    elif data is not None:
        x, y = data
        examples, labels = x[:n_examples], y[:n_examples]
        if class_dirs and len(np.unique(y)) > 1:
            cache_dir = os.path.join(logdir, "demo") if logdir and os.path.isdir(logdir) else None
            found.update(class_directions(glow, x, y, cache_dir, checkpoint, batch_size))
    else:
        labels = (np.arange(n_examples) % cfg.n_y).astype(np.int32) if cfg.ycond else None
        examples = glow.sample(n_examples, 0.7, labels, seed=0, batch_size=batch_size)
    return found, examples, labels, flags
