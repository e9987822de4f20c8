"""What the tests that start a real horovodrun share (test_distributed.py, test_elastic.py): the venv's
horovodrun, the environment of its ranks, and the mark that skips them where Horovod is not built."""
import os
import shutil
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOROVODRUN = shutil.which("horovodrun", path=os.path.dirname(sys.executable)) or shutil.which("horovodrun")
# One thread per rank: two ranks share the two cores. Gloo's rendezvous waits 300 s instead of its default
# 30 s (HOROVOD_GLOO_TIMEOUT_SECONDS): on a loaded machine a worker joining an elastic run takes longer
# than 30 s to import TensorFlow, and the waiting survivors would abort (gloo::IoException, "Wait timeout").
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO, "CUDA_VISIBLE_DEVICES": "",
       "OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
       "HOROVOD_GLOO_TIMEOUT_SECONDS": "300"}


def _horovod_missing():
    try:
        import horovod.tensorflow  # noqa: F401, PLC0415
    except ImportError as e:
        return f"horovod is not importable ({e}); scripts/install.sh builds it"
    if HOROVODRUN is None:
        return "horovodrun is not on PATH"
    return None


HOROVOD_MISSING = _horovod_missing()
needs_horovod = pytest.mark.skipif(HOROVOD_MISSING is not None, reason=str(HOROVOD_MISSING))
