"""Shared pytest fixtures: the two execution regimes, the session's one trained digits run
(`digits_run`, `digits_glow`) and the original's reference models (`original_model`)."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The 3x3 convolutions' form by the fixed rule (networks.tap_form_is_faster), not measured: the suite's
# numbers and time do not depend on a measurement (tests/test_networks.py tests the measured choice).
os.environ.setdefault("GLOW_TF_CONV_FORM", "rule")

import pytest  # noqa: E402

from glow_tf.cli.quiet import import_tensorflow_quietly  # noqa: E402 (imports no TensorFlow)

import_tensorflow_quietly()  # TensorFlow without its harmless start-up errors on the console
import tensorflow as tf  # noqa: E402

import fcntl  # noqa: E402
import io  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tarfile  # noqa: E402

import numpy as np  # noqa: E402

from glow_tf import GlowConfig, load_original_checkpoint, load_run  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two worker processes share each GPU: each takes memory as it needs it, not all of it at start.
    for _gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(_gpu, True)

ORIGINAL_FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "original_glow"
# The session's trained model, made as a user makes one: train.py's smallest configuration (configs/tiny.py: a
# 2-level, 2-step, width-16 affine Glow on the 8x8 digits), class-conditional as the quick start's, 3 epochs of
# 4 steps. test_latent.py, test_sample.py and test_demo.py use it.
DIGITS_RUN_FLAGS = ["--config", "tiny", "--ycond", "--epochs", "3"]


@pytest.fixture(params=["eager", "tf_function"])
def run(request):
    """Runs a callable eagerly or traced (TFP's test_all_tf_execution_regimes, reduced to two)."""
    return (lambda f: f) if request.param == "eager" else tf.function


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """The folder of a train.py run (`train.main(DIGITS_RUN_FLAGS + ["--logdir", ...])`), trained once per
    pytest session: under pytest-xdist the first worker that needs it trains it into the session's folder
    (the parent of the workers' own) while the others wait on a lock, then all read it."""
    import train  # noqa: PLC0415

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    logdir, done = root / "digits_run", root / "digits_run.done"
    with open(root / "digits_run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            shutil.rmtree(logdir, ignore_errors=True)  # a run another worker left half-written
            train.main([*DIGITS_RUN_FLAGS, "--logdir", str(logdir)])
            done.touch()
    return logdir


@pytest.fixture(scope="session")
def digits_glow(digits_run):
    """The trained digits model of `digits_run`, loaded once per session (its functions traced once)."""
    return load_run(str(digits_run))[0]


@functools.lru_cache(maxsize=None)
def _original_model(name):
    folder = ORIGINAL_FIXTURES / name
    config = GlowConfig.from_dict(json.loads((folder / "hps.json").read_text()), strict=False)
    return load_original_checkpoint(str(folder / "model.ckpt"), config), dict(np.load(folder / "reference.npz"))


@pytest.fixture(scope="session")
def original_model():
    """name -> (glow with the original's weights, reference arrays) of tests/fixtures/original_glow/NAME,
    each loaded once per session."""
    return _original_model


_CLI_MODELS = {}


@pytest.fixture
def cli_loads_each_model_once(monkeypatch):
    """The command line's load_model, memoised over the session: each model a test names on the
    command line is loaded (and its functions traced) once, however many commands use it. For modules
    that run many commands on the same models (`pytestmark = pytest.mark.usefixtures(...)`)."""
    from glow_tf import __main__ as cli  # noqa: PLC0415

    load = cli.load_model

    def cached(args):
        key = (args.logdir, args.restore_path, args.hps, args.which, args.polyak)
        if key not in _CLI_MODELS:
            _CLI_MODELS[key] = load(args)
        return _CLI_MODELS[key]

    monkeypatch.setattr(cli, "load_model", cached)


@pytest.fixture(scope="session")
def original_checkout(tmp_path_factory):
    """openai/glow's main branch, checked out with git archive from the git directory $GLOW_ORIGINAL_GIT
    (skipped when unset)."""
    git_dir = os.environ.get("GLOW_ORIGINAL_GIT")
    if not git_dir:
        pytest.skip("GLOW_ORIGINAL_GIT is not set (a git directory of openai/glow, e.g. a clone's .git)")
    if not os.path.isdir(git_dir):
        pytest.fail(f"GLOW_ORIGINAL_GIT={git_dir!r} is not a directory (expected a git directory of openai/glow)")
    archive = subprocess.run(["git", "--git-dir", git_dir, "archive", "HEAD"], capture_output=True, check=True).stdout
    folder = tmp_path_factory.mktemp("openai_glow")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return str(folder)
