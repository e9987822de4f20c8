"""Checkpoints: loading the original release's (TF1 `tf.train.Saver`, openai/glow) and this project's runs."""
import os

import numpy as np
import tensorflow as tf

from glow_tf.bijectors.actnorm import ActNorm
from glow_tf.bijectors.invertible_conv import InvertibleConv1x1, InvertibleConv1x1LU
from glow_tf.bijectors.permutations import ShuffleChannels
from glow_tf.config import GlowConfig
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


def find_checkpoint(path, which="latest"):
    """The checkpoint prefix for `path`: a run directory (its latest or best checkpoint), a
    checkpoint folder, or a checkpoint prefix itself. Raises FileNotFoundError naming what is missing."""
    if which not in CHECKPOINT_DIRS:
        raise ValueError(f"which={which!r}; expected one of {sorted(CHECKPOINT_DIRS)}")
    if os.path.isdir(path):
        for folder in (os.path.join(path, CHECKPOINT_DIRS[which]), path):
            prefix = tf.train.latest_checkpoint(folder)
            if prefix:
                return prefix
        raise FileNotFoundError(f"no {which} checkpoint in {path!r} (looked in {CHECKPOINT_DIRS[which]}/ and the "
                                f"folder itself); train first, or pass a checkpoint prefix")
    if tf.io.gfile.exists(path + ".index"):
        return path
    raise FileNotFoundError(f"no checkpoint at {path!r}: expected a run directory or a checkpoint prefix "
                            f"(the path without .index)")


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
