"""What `python -m glow_tf serve` prepares once at start-up: the run's training flags, its example
images and, for runs with class labels, one direction per class.

Examples: the first test images of the run's own data when that data is local (digits, a folder,
MNIST / CIFAR-10 given a --data_dir); otherwise the model's own samples at temperature 0.7.

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

import data_loaders
from glow_tf import directions as direction_ops
from glow_tf.io import atomic_path

LOCAL_PROBLEMS = ("digits", "digits_4bit", "folder")  # read from disk with no download
LABELLED_PROBLEMS = ("digits", "digits_4bit", "folder", "mnist", "cifar10")
MAX_CLASS_IMAGES = 2000
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


def prepare(glow, logdir=None, checkpoint="", directions_file=None, data_dir=None, n_examples=8,
            class_dirs=True, batch_size=64):
    """(directions {name: [D]}, examples uint8 [N, H, W, C], their labels or None, the run's flags)."""
    cfg = glow.config
    flags = run_flags(logdir)
    found = {}
    if directions_file:
        found.update(direction_ops.load_directions(directions_file, cfg.n_dims))
    data = run_test_data(flags, cfg, data_dir)
    if data is not None:
        x, y = data
        examples, labels = x[:n_examples], y[:n_examples]
        if class_dirs and len(np.unique(y)) > 1:
            cache_dir = os.path.join(logdir, "demo") if logdir and os.path.isdir(logdir) else None
            found.update(class_directions(glow, x, y, cache_dir, checkpoint, batch_size))
    else:
        labels = (np.arange(n_examples) % cfg.n_y).astype(np.int32) if cfg.ycond else None
        examples = glow.sample(n_examples, 0.7, labels, seed=0, batch_size=batch_size)
    return found, examples, labels, flags
