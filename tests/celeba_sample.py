"""Where the tests find CelebA's first 1,000 faces (half size, with their attribute rows)."""
import os
import pathlib

import pytest

from data_loaders import celeba

ROOT = pathlib.Path(__file__).resolve().parent.parent


def celeba_sample_dir():
    """The 1,000-face sample: $GLOW_CELEBA_SAMPLE, else shared/data/celeba_sample beside the repository."""
    path = os.environ.get("GLOW_CELEBA_SAMPLE") or str(ROOT.parent / "shared" / "data" / "celeba_sample")
    if not os.path.isdir(os.path.join(path, celeba.IMAGE_DIR)):
        message = f"no CelebA sample at {path!r} (set GLOW_CELEBA_SAMPLE)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
