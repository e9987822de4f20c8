"""What the tests that start a real horovodrun share (test_distributed.py, test_elastic.py): the venv's
horovodrun, the environment of its ranks, and the mark that skips them where Horovod is not built."""
import os
import shutil
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOROVODRUN = shutil.which("horovodrun", path=os.path.dirname(sys.executable)) or shutil.which("horovodrun")
# One thread per rank: two ranks share the two cores.
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO, "CUDA_VISIBLE_DEVICES": "",
       "OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


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
