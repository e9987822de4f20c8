"""Runs the original release (openai/glow, TF1) from a local checkout, for timing beside ours.

The original cannot be shipped here; given `--original_dir DIR` holding its model.py, tfops.py and
optim.py, the benchmarks import those files unchanged under `tf.compat.v1` graph mode, with
stand-ins for what TF 2.18 no longer has:

- `tensorflow` is `tensorflow.compat.v1` (with v2 behaviour off) while the files are imported;
- `tensorflow.contrib.framework.python.ops.{arg_scope, add_arg_scope}`: the small tf_slim-like pair
  below (default keyword arguments by function, set by a context manager);
- `tensorflow.contrib.layers.variance_scaling_initializer`: compat.v1's;
- `horovod.tensorflow`: a single process (rank 0, size 1, broadcasts are no-ops).

The model is built by the original's own `model.model(sess, hps, ...)`, so its training step is
`m.train(lr)` (feed_dict, adamax, Polyak averaging, no gradient checkpointing) and its sampler is
`m.sample(y, eps_std)`, exactly what its train.py calls. Written against openai/glow's main branch
(commit 91b2c57), whose model.py reads `hps.inference` and samples with `m.sample` (older revisions
had `m.decode(y, eps_std)` there).
"""
import contextlib
import functools
import importlib.util
import os
import sys
import types

import common

FILES = ("model.py", "tfops.py", "optim.py")
# model.py's invertible_1x1_conv picks the full W or the LU-decomposed form with this line.
LU_SWITCH = 'if True:  # Set to "False" to use the LU-decomposed version'
PERMUTATION_CODES = {"reverse": 0, "shuffle": 1, "invconv": 2}
COUPLING_CODES = {"additive": 0, "affine": 1}


def check_dir(path):
    """FileNotFoundError naming what is missing unless `path` holds the original's three files."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"--original_dir {path!r} is not a directory; expected a checkout of "
                                f"openai/glow holding {', '.join(FILES)}")
    missing = [f for f in FILES if not os.path.isfile(os.path.join(path, f))]
    if missing:
        raise FileNotFoundError(f"--original_dir {path!r} lacks {', '.join(missing)}; expected a checkout of "
                                f"openai/glow holding {', '.join(FILES)}")


# --- stand-ins ------------------------------------------------------------------------------
_ARG_SCOPE = [{}]  # stack of {function key: {kwarg: value}}


def _key(fn):
    return getattr(fn, "_arg_scope_key", fn)


@contextlib.contextmanager
def arg_scope(functions, **kwargs):
    """tf_slim.arg_scope: inside, calls to each of `functions` get `kwargs` as defaults."""
    scope = {k: dict(v) for k, v in _ARG_SCOPE[-1].items()}
    for fn in functions:
        scope.setdefault(_key(fn), {}).update(kwargs)
    _ARG_SCOPE.append(scope)
    try:
        yield scope
    finally:
        _ARG_SCOPE.pop()


def add_arg_scope(fn):
    """tf_slim.add_arg_scope: explicit keyword arguments win over the current scope's defaults."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **{**_ARG_SCOPE[-1].get(wrapper._arg_scope_key, {}), **kwargs})
    wrapper._arg_scope_key = fn
    return wrapper


def _single_process_horovod(tf1):
    hvd = types.ModuleType("horovod.tensorflow")
    hvd.init = lambda: None
    hvd.rank = hvd.local_rank = lambda: 0
    hvd.size = lambda: 1
    hvd.broadcast_global_variables = lambda root_rank: tf1.no_op()
    hvd.mpi_ops = types.SimpleNamespace(_allreduce=lambda x: x)
    return hvd


def _load_model_module(path, lu):
    """model.py as module `model`; with `lu`, its LU switch turned the other way (that one line only)."""
    file = os.path.join(path, "model.py")
    if not lu:
        import model  # noqa: PLC0415 (the original's model.py)
        return model
    with open(file) as f:
        source = f.read()
    if source.count(LU_SWITCH) != 1:
        raise ValueError(f"{file!r} does not contain the line {LU_SWITCH!r} exactly once, so its LU-decomposed "
                         f"1x1 convolution cannot be switched on; expected openai/glow's model.py")
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location("model", file))
    sys.modules["model"] = module
    exec(compile(source.replace(LU_SWITCH, "if False:"), file, "exec"), module.__dict__)  # noqa: S102
    return module


def import_original(path, lu=False):
    """(model, tfops, tf1): the original's modules, imported from `path` with the stand-ins above.

    `lu=True` builds the LU-decomposed 1x1 convolution, the branch model.py ships switched off.
    """
    check_dir(path)
    import tensorflow as tf
    tf1 = tf.compat.v1
    tf1.disable_v2_behavior()

    contrib = types.ModuleType("tensorflow.contrib")
    ops = types.ModuleType("tensorflow.contrib.framework.python.ops")
    ops.arg_scope, ops.add_arg_scope = arg_scope, add_arg_scope
    layers = types.ModuleType("tensorflow.contrib.layers")
    layers.variance_scaling_initializer = tf1.variance_scaling_initializer
    hvd = _single_process_horovod(tf1)
    horovod = types.ModuleType("horovod")
    horovod.tensorflow = hvd
    stand_ins = {"tensorflow": tf1, "tensorflow.contrib": contrib,
                 "tensorflow.contrib.framework": types.ModuleType("tensorflow.contrib.framework"),
                 "tensorflow.contrib.framework.python": types.ModuleType("tensorflow.contrib.framework.python"),
                 "tensorflow.contrib.framework.python.ops": ops, "tensorflow.contrib.layers": layers,
                 "horovod": horovod, "horovod.tensorflow": hvd}
    saved = {k: sys.modules.get(k) for k in [*stand_ins, "model", "tfops", "optim"]}
    sys.modules.update(stand_ins)
    sys.path.insert(0, os.path.abspath(path))
    try:
        for name in ("model", "tfops", "optim"):
            sys.modules.pop(name, None)
        original_model = _load_model_module(path, lu)
        tfops = sys.modules["tfops"]
    finally:
        sys.path.remove(os.path.abspath(path))
        for k, v in saved.items():
            if k in ("model", "tfops", "optim"):
                continue
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return original_model, tfops, tf1


def hps_for(config, batch, gradient_checkpointing=0):
    """The original's `hps` namespace for one of common.CONFIGS, with train.py's defaults."""
    return types.SimpleNamespace(
        image_size=config["image_size"], n_levels=config["n_levels"], depth=config["depth"],
        width=config["width"], flow_permutation=PERMUTATION_CODES[config.get("flow_permutation", "invconv")],
        flow_coupling=COUPLING_CODES[config.get("flow_coupling", "additive")],
        learntop=bool(config.get("learntop", False)), ycond=False, n_y=1, weight_y=0.0,
        n_bits_x=config.get("n_bits_x", 8), gradient_checkpointing=gradient_checkpointing, optimizer="adamax",
        direct_iterator=False, train_its=max(1, 50000 // batch), polyak_epochs=1.0, beta1=0.9, weight_decay=1.0,
        restore_path="", inference=False, n_batch_train=batch)


def session_config(tf1, spec):
    """The session's ConfigProto: `spec["threads"]` = [intra-op, inter-op] threads (TensorFlow's
    defaults when absent); `spec["xla"]` turns on XLA auto-clustering of the whole graph
    (global_jit_level ON_1, the TF1 way; on a CPU it also needs TF_XLA_FLAGS=--tf_xla_cpu_global_jit
    in the process's environment)."""
    config = tf1.ConfigProto(allow_soft_placement=True)
    if spec.get("threads"):
        config.intra_op_parallelism_threads, config.inter_op_parallelism_threads = spec["threads"]
    if spec.get("xla"):
        config.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
    return config


def build(spec):
    """Worker: the original's model; `mode` "train" times m.train(lr), "sample" times m.sample."""
    import time

    import numpy as np

    model, _, tf1 = import_original(spec["original_dir"])
    config, batch = spec["config"], spec["batch"]
    hps = hps_for(config, batch)
    np.random.seed(0)
    tf1.set_random_seed(0)
    x = common.random_images(batch, config["image_size"])
    y = np.zeros(batch, np.int32)
    sess = tf1.Session(config=session_config(tf1, spec))
    t0 = time.perf_counter()
    m = model.model(sess, hps, lambda: (x, y), lambda: (x, y), {"x": x, "y": y})
    built = time.perf_counter() - t0
    # The original's optimiser slots and step counter are trainable by accident (docs/original.md#q1): count the model's.
    n_params = int(sum(np.prod(v.get_shape().as_list()) for v in tf1.trainable_variables()
                       if v.name.startswith("model/") and "_adam" not in v.name))
    if spec["mode"] == "train":
        def step():
            m.train(1e-4)
    else:
        eps_std = np.full(batch, spec.get("temperature", 0.7), np.float32)

        def step():
            m.sample(y, eps_std)
    t0 = time.perf_counter()
    step()
    return step, 2, {"params": n_params, "build_s": round(built, 1),
                     "first_step_s": round(time.perf_counter() - t0, 1)}


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--worker":
        sys.exit("bench/original.py is started by the benchmarks as a worker; use "
                 "train_speed.py/sample_speed.py --original_dir DIR")
    sys.exit(common.worker_main(sys.argv[2], build))
