"""Shared pytest fixtures and the xdist grouping; imports glow_tf first, which loads TensorFlow quietly."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from glow_tf.cli.quiet import import_tensorflow_quietly  # noqa: E402 (imports no TensorFlow)

import_tensorflow_quietly()  # TensorFlow without its harmless start-up errors on the console
import tensorflow as tf  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two worker processes share each GPU: each takes memory as it needs it, not all of it at start.
    for _gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(_gpu, True)


@pytest.fixture(params=["eager", "tf_function"])
def run(request):
    """Runs a callable eagerly or traced (TFP's test_all_tf_execution_regimes, reduced to two)."""
    return (lambda f: f) if request.param == "eager" else tf.function


# --- running under pytest-xdist (pytest.ini: -n 2 --dist loadfile) ----------------------------------------
# A module's tests stay on one worker (its module- and session-scoped fixtures are built once), and modules
# that share a session fixture share a worker: test_sample.py uses test_latent.py's trained digits model.
SHARED_WORKER = {"test_sample": "test_latent"}
# The slowest modules start first so that the two workers finish together (xdist hands out modules in this
# order, each to the next free worker); the rest follow in file order.
SLOWEST_FIRST = ("test_bench", "test_distributed", "test_install", "test_model", "test_elastic", "test_train",
                 "test_checkpoint", "test_demo")


def _group(path):
    """The scheduling group of a test file: its name, or the module whose session fixtures it shares."""
    stem = os.path.splitext(os.path.basename(str(path)))[0]
    return SHARED_WORKER.get(stem, stem)


def pytest_xdist_make_scheduler(config, log):
    """--dist loadfile with SHARED_WORKER's modules joined: each group goes whole to one worker.
    (xdist's own --dist loadgroup marks do not reach its scheduler under pytest 9's node ids.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling  # noqa: PLC0415

    class ModuleGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return _group(nodeid.split("::", 1)[0])

    return ModuleGroups(config, log)


def pytest_collection_modifyitems(config, items):
    if hasattr(config, "workerinput"):  # an xdist worker; a plain run keeps the file order
        rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
        items.sort(key=lambda item: rank.get(_group(item.path), len(rank)))
