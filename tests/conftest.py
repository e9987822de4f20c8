"""Shared pytest fixtures; also quietens TensorFlow's C++ start-up logging before it is imported."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402


@pytest.fixture(params=["eager", "tf_function"])
def run(request):
    """Runs a callable eagerly or traced (TFP's test_all_tf_execution_regimes, reduced to two)."""
    return (lambda f: f) if request.param == "eager" else tf.function
