"""Checkpoints: loading the original release's (TF1 `tf.train.Saver`, openai/glow) and this project's runs."""
import hashlib
import json
import os
import sys
import time

import numpy as np
import tensorflow as tf

from glow_tf.bijectors.actnorm import ActNorm
from glow_tf.bijectors.invertible_conv import InvertibleConv1x1, InvertibleConv1x1LU
from glow_tf.bijectors.permutations import ShuffleChannels
from glow_tf.config import GlowConfig
from glow_tf.io import atomic_write_text
from glow_tf.model import Glow

_EMA_SUFFIX = "/ExponentialMovingAverage"


def _actnorm_names(prefix, actnorm):
    return {f"{prefix}/actnorm_center/b": actnorm.b, f"{prefix}/actnorm_scale/logs": actnorm.logs_var}


def _zeros_names(prefix, layer):
    return {f"{prefix}/W": layer.W, f"{prefix}/b": layer.b, f"{prefix}/logs": layer.logs}


def original_variable_map(glow):
    """{original variable name: our tf.Variable} for every variable of the original's graph.

    Names are those of openai/glow's `model` scope (model.py / tfops.py), e.g. `model/0/1/f1/l_1/W`,
    `model/pool0/conv/logs`, `model/prior/p/W`, `model/0/0/invconv/W`.
    """
    names = {}
    for i, level in enumerate(glow.levels):
        for k, step in enumerate(level.steps):
            p = f"model/{i}/{k}"
            names.update(_actnorm_names(p, step.actnorm))
            perm = step.permutation
            if isinstance(perm, InvertibleConv1x1):
                names[f"{p}/invconv/W"] = perm.W
            elif isinstance(perm, InvertibleConv1x1LU):
                names.update({f"{p}/invconv/{v}": getattr(perm, v) for v in ("P", "L", "U", "log_S", "sign_S")})
            elif isinstance(perm, ShuffleChannels):
                names[f"{p}/shuffle/indices"] = perm.indices
                names[f"{p}/shuffle/indices_inverse"] = perm.indices_inverse
            f = step.coupling.f1
            for layer in ("l_1", "l_2"):
                conv = getattr(f, layer)
                names[f"{p}/f1/{layer}/W"] = conv.W
                names.update(_actnorm_names(f"{p}/f1/{layer}", conv.actnorm))
            names.update(_zeros_names(f"{p}/f1/l_last", f.l_last))
        if level.split is not None:
            names.update(_zeros_names(f"model/pool{i}/conv", level.split.conv))
    prior = glow.top_prior
    if prior.p is not None:
        names.update(_zeros_names("model/prior/p", prior.p))
    if prior.y_emb is not None:
        names.update(_zeros_names("model/prior/y_emb", prior.y_emb))
    if glow.classifier is not None:
        names.update(_zeros_names("model/classifier", glow.classifier))
    return names


def load_original_checkpoint(prefix, config, polyak=False):
    """A `Glow` holding the weights of an original TF1 checkpoint (`prefix` as given to Saver.restore).

    Only the model's variables are read: the optimiser's slots (`Variable_N`) are skipped. With
    `polyak=True` the Polyak averages (`<name>/ExponentialMovingAverage`) are loaded instead of the
    raw weights. Refuses, naming the culprits, a checkpoint whose model variables or shapes do not
    fit `config`. Every actnorm is marked initialised.
    """
    if isinstance(config, dict):
        config = GlowConfig.from_dict(config, strict=False)
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as e:
        raise FileNotFoundError(f"no readable TF checkpoint at {prefix!r} ({type(e).__name__})") from None
    shapes = reader.get_variable_to_shape_map()
    in_checkpoint = {n for n in shapes if n.startswith("model/") and _EMA_SUFFIX not in n}

    glow = Glow(config)
    wanted = original_variable_map(glow)
    missing = sorted(set(wanted) - in_checkpoint)
    unexpected = sorted(in_checkpoint - set(wanted))
    wrong_shape = [f"{n}: checkpoint {shapes[n]}, config {wanted[n].shape.as_list()}"
                   for n in sorted(set(wanted) & in_checkpoint) if list(shapes[n]) != wanted[n].shape.as_list()]
    if missing or unexpected or wrong_shape:
        problems = []
        for label, items in (("missing", missing), ("not in this config", unexpected), ("wrong shape", wrong_shape)):
            if items:
                problems.append(f"{len(items)} {label}: {', '.join(items[:5])}{' ...' if len(items) > 5 else ''}")
        raise ValueError(f"checkpoint {prefix!r} does not fit the config {config}: " + "; ".join(problems))

    for name, var in wanted.items():
        source = name + _EMA_SUFFIX if polyak and var.trainable else name
        if source not in shapes:
            raise ValueError(f"checkpoint {prefix!r} has no Polyak average {source!r}")
        var.assign(np.asarray(reader.get_tensor(source)).astype(var.dtype.as_numpy_dtype))
    for module in glow.submodules:
        if isinstance(module, ActNorm):
            module.initialized.assign(True)
    return glow


# --- this project's own runs ---------------------------------------------------------------------
# A run directory (train.py --logdir) holds `config.json` (the GlowConfig) and two
# tf.train.CheckpointManager folders, `checkpoints/` (the latest few) and `best/` (best test loss),
# each with a copy of config.json. Checkpoints are objects `tf.train.Checkpoint(model=glow,
# optimizer=..., progress=...)`; TF writes them to temporary files and renames, and the manager's
# state file is replaced atomically, so a crash mid-save leaves the previous checkpoint intact.
CONFIG_NAME = "config.json"
CHECKPOINT_DIRS = {"latest": "checkpoints", "best": "best"}


MANIFEST_SUFFIX = ".sha256.json"  # ckpt-N.sha256.json beside ckpt-N.index and ckpt-N.data-*
DAMAGED_DIR = "damaged"  # where train.py --resume moves checkpoints that fail verification


class CheckpointDamagedError(FileNotFoundError):
    """No checkpoint of a folder (or the one named) passed verification; the message names each file."""


def checkpoint_files(prefix):
    """The files of the TF checkpoint `prefix`: its .index and its .data-NNNNN-of-NNNNN shards."""
    return sorted(tf.io.gfile.glob(prefix + ".data-?????-of-?????")) + [prefix + ".index"]


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(prefix):
    """Records the size and sha256 of each file of `prefix` in `prefix.sha256.json` (written atomically)."""
    files = {os.path.basename(f): {"bytes": os.path.getsize(f), "sha256": _sha256(f)}
             for f in checkpoint_files(prefix) if os.path.exists(f)}
    atomic_write_text(prefix + MANIFEST_SUFFIX, json.dumps({"files": files}, indent=1, sort_keys=True) + "\n")


def verify_checkpoint(prefix):
    """None when the checkpoint `prefix` is intact, else why not (one line naming the file).

    With a manifest (written after each save since checked checkpoints exist) every listed file must
    be there with its recorded size and sha256. Without one (older checkpoints), TensorFlow must be
    able to read every tensor: its own per-tensor checksums then catch flipped bytes, and a truncated
    file fails to read.
    """
    name = os.path.basename(prefix)
    manifest = prefix + MANIFEST_SUFFIX
    if os.path.exists(manifest):
        try:
            with open(manifest) as f:
                files = json.load(f)["files"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            return f"{os.path.basename(manifest)} is unreadable ({type(e).__name__})"
        folder = os.path.dirname(prefix)
        if name + ".index" not in files:
            return f"{os.path.basename(manifest)} lists no {name}.index"
        for file, recorded in sorted(files.items()):
            path = os.path.join(folder, file)
            if not os.path.exists(path):
                return f"{file} is missing"
            size = os.path.getsize(path)
            if size != recorded["bytes"]:
                return f"{file} has {size} bytes, {recorded['bytes']} when written"
            if _sha256(path) != recorded["sha256"]:
                return f"{file} does not match its sha256 in {os.path.basename(manifest)}"
        return None
    for file in checkpoint_files(prefix):
        if not os.path.exists(file):
            return f"{os.path.basename(file)} is missing"
    try:
        reader = tf.train.load_checkpoint(prefix)
        for tensor in reader.get_variable_to_shape_map():
            reader.get_tensor(tensor)
    except Exception as e:  # noqa: BLE001 (TF raises OpErrors, IndexError, ValueError... for damaged files)
        return f"TensorFlow cannot read it (no manifest; {type(e).__name__}: {_first_line(e)})"
    return None


def _first_line(error):
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else ""


def _step(prefix):
    tail = prefix.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def list_checkpoints(folder):
    """The checkpoint prefixes in `folder`, newest first: those the folder's `checkpoint` state file
    names and any other `*.index` there (a state file lost or behind), ordered by step number."""
    prefixes = set()
    try:
        state = tf.train.get_checkpoint_state(folder)
    except Exception:  # noqa: BLE001 (a garbled state file: the *.index files below still count)
        state = None
    if state is not None:  # TensorFlow has already put the folder in front of relative paths
        prefixes.update(os.path.normpath(p) for p in state.all_model_checkpoint_paths)
    for index in tf.io.gfile.glob(os.path.join(folder, "*.index")):
        prefixes.add(os.path.normpath(index[:-len(".index")]))
    return sorted(prefixes, key=lambda p: (_step(p), p), reverse=True)


def select_checkpoint(folder):
    """(the newest prefix in `folder` that verifies or None, [(prefix, reason) of the newer ones that
    do not]). Raises CheckpointDamagedError when the folder has checkpoints and none verifies."""
    skipped = []
    candidates = list_checkpoints(folder)
    for prefix in candidates:
        reason = verify_checkpoint(prefix)
        if reason is None:
            return prefix, skipped
        skipped.append((prefix, reason))
    if skipped:
        raise CheckpointDamagedError(f"no intact checkpoint in {folder!r}: " + describe_skipped(skipped))
    return None, skipped


def describe_skipped(skipped):
    return "; ".join(f"{os.path.basename(p)}: {reason}" for p, reason in skipped)


def _say_skipped(skipped, chosen):
    if skipped:
        print(f"glow_tf: skipped damaged checkpoint(s) {describe_skipped(skipped)}; using "
              f"{os.path.basename(chosen)}", file=sys.stderr, flush=True)


def find_checkpoint(path, which="latest", verify=True):
    """The checkpoint prefix for `path`: a run directory (its newest latest or best checkpoint that
    verifies), a checkpoint folder, or a checkpoint prefix itself.

    Damaged checkpoints (see verify_checkpoint) are skipped, with one line on stderr naming them and
    why; none is ever deleted or changed. Raises CheckpointDamagedError (a FileNotFoundError) naming
    every damaged file when none verifies, FileNotFoundError when there is no checkpoint.
    `verify=False` returns the newest checkpoint without reading it.
    """
    if which not in CHECKPOINT_DIRS:
        raise ValueError(f"which={which!r}; expected one of {sorted(CHECKPOINT_DIRS)}")
    if os.path.isdir(path):
        for folder in (os.path.join(path, CHECKPOINT_DIRS[which]), path):
            if not os.path.isdir(folder):
                continue
            if not verify:
                candidates = list_checkpoints(folder)
                if candidates:
                    return candidates[0]
                continue
            prefix, skipped = select_checkpoint(folder)
            if prefix:
                _say_skipped(skipped, prefix)
                return prefix
        raise FileNotFoundError(f"no {which} checkpoint in {path!r} (looked in {CHECKPOINT_DIRS[which]}/ and the "
                                f"folder itself); train first, or pass a checkpoint prefix")
    if tf.io.gfile.exists(path + ".index"):
        reason = verify_checkpoint(path) if verify else None
        if reason:
            raise CheckpointDamagedError(f"checkpoint {path!r} is damaged: {reason}")
        return path
    raise FileNotFoundError(f"no checkpoint at {path!r}: expected a run directory or a checkpoint prefix "
                            f"(the path without .index)")


def set_aside_damaged(folder):
    """Moves every checkpoint of `folder` that fails verification into `folder/damaged/` (never
    deleting a file) and rewrites the folder's state file to list the intact ones only, so that a run
    resumed there neither overwrites nor, through the CheckpointManager's max_to_keep, deletes them.
    Returns [(prefix, reason)] of those moved."""
    moved = []
    prefixes = list_checkpoints(folder)
    for prefix in prefixes:
        reason = verify_checkpoint(prefix)
        if reason is None:
            continue
        target = os.path.join(folder, DAMAGED_DIR)
        os.makedirs(target, exist_ok=True)
        for file in checkpoint_files(prefix) + [prefix + MANIFEST_SUFFIX]:
            if os.path.exists(file):
                destination = os.path.join(target, os.path.basename(file))
                if os.path.exists(destination):  # the same name moved aside before: keep both
                    destination += f".{int(time.time())}"
                os.replace(file, destination)
        moved.append((prefix, reason))
    if moved:
        intact = [p for p in reversed(prefixes) if p not in {m for m, _ in moved}]
        state_file = os.path.join(folder, "checkpoint")
        if intact:
            names = [os.path.basename(p) for p in intact]  # relative: the run folder may move
            tf.compat.v1.train.update_checkpoint_state(folder, names[-1], all_model_checkpoint_paths=names)
        elif os.path.exists(state_file):
            os.replace(state_file, os.path.join(folder, DAMAGED_DIR, "checkpoint"))
    return moved


def find_config(path):
    """The GlowConfig saved with a run: config.json beside the checkpoint, in its folder or above."""
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    for candidate in (folder, os.path.dirname(folder)):
        f = os.path.join(candidate, CONFIG_NAME)
        if os.path.exists(f):
            return GlowConfig.load(f)
    raise FileNotFoundError(f"no {CONFIG_NAME} found for {path!r} (looked in {folder!r} and its parent)")


def load_run(path, which="latest", polyak=False):
    """(glow, checkpoint prefix) for a run of train.py: the config saved with it and the weights of
    its latest (or best) checkpoint. `polyak=True` loads the Polyak averages kept by the optimiser."""
    from glow_tf.optim import Optimizer  # noqa: PLC0415 (the model itself does not need the optimiser)

    prefix = find_checkpoint(path, which)
    glow = Glow(find_config(prefix))
    if polyak:
        optimizer = Optimizer(glow.trainable_variables, beta2=0.5)  # decay is irrelevant to a restore
        tf.train.Checkpoint(model=glow, optimizer=optimizer).restore(prefix).expect_partial()
        for param, average in zip(glow.trainable_variables, optimizer.ema):
            param.assign(average)
    else:
        tf.train.Checkpoint(model=glow).restore(prefix).expect_partial()
    if not glow.is_initialized:
        raise ValueError(f"checkpoint {prefix!r} holds a model whose actnorms were never initialised")
    return glow, prefix
