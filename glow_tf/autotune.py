"""Measured once, cached: which of equivalent forms of a computation is the faster on this machine.

Like cuDNN's autotune: the first time a computation of a given kind and shape is needed (per dtype,
kernel library, XLA or not, TensorFlow version and CPU model: the parts of `key`), every form is timed
(forward + backward, a few repetitions interleaved, median), the decision is kept for the process and
written to a small JSON file, `autotune.json` in `cache_dir()`, so later processes on the machine reuse
it without measuring. A challenger replaces the default form only when it is faster by more than
`MARGIN` (the noise of a few repetitions on a shared machine): never a slower form than the default
beyond noise.

The file is written atomically (merged with what other processes wrote meanwhile). A corrupt or
unreadable file is measured again with one warning; an unwritable folder keeps the decisions in the
process, with one warning. Neither is an error.
"""
import datetime
import json
import os
import platform
import threading
import time
import warnings

from glow_tf.io import atomic_write_text

CACHE_ENV = "GLOW_TF_CACHE_DIR"
FILE_NAME = "autotune.json"
FORMAT = 1
MARGIN = 0.05  # a challenger must take less than (1 - MARGIN) x the default's median time

_decisions = {}  # key -> entry, this process's decisions
_lock = threading.RLock()
_warned = set()
measurements = 0  # how many measurements this process made (the tests count them)


def cache_dir():
    """$GLOW_TF_CACHE_DIR, else $XDG_CACHE_HOME/glow_tf, else ~/.cache/glow_tf."""
    folder = os.environ.get(CACHE_ENV)
    if folder:
        return folder
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "glow_tf")


def cache_path():
    return os.path.join(cache_dir(), FILE_NAME)


def cpu_model():
    """The CPU's model name (/proc/cpuinfo), else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def key(**parts):
    """A cache key: the given parts plus TensorFlow's version and the CPU model, as canonical JSON."""
    import tensorflow as tf

    return json.dumps({**parts, "tensorflow": tf.__version__, "cpu": cpu_model()}, sort_keys=True)


def forget():
    """Drops this process's decisions (the file is kept): the next `decide` reads the file again."""
    with _lock:
        _decisions.clear()
        _warned.clear()


def _warn_once(what, message):
    if what not in _warned:
        _warned.add(what)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def _read_entries(path):
    """{key: entry} of the cache file; {} (with one warning) if it is corrupt or unreadable."""
    try:
        with open(path) as f:
            data = json.load(f)
        entries = data["entries"]
        if data.get("format") != FORMAT or not isinstance(entries, dict):
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
        return {k: e for k, e in entries.items() if isinstance(e, dict) and isinstance(e.get("form"), str)}
    except (FileNotFoundError, NotADirectoryError):  # nothing cached yet (or no folder: its write will say)
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        _warn_once(("read", path), f"glow_tf: the autotune cache {path} is unreadable ({type(e).__name__}: {e}); "
                                   "measuring again and rewriting it")
        return {}


def _write_entry(path, k, entry):
    entries = _read_entries(path) if os.path.exists(path) else {}
    entries[k] = entry
    try:
        atomic_write_text(path, json.dumps({"format": FORMAT, "entries": entries}, indent=1, sort_keys=True) + "\n")
    except OSError as e:
        _warn_once(("write", path), f"glow_tf: cannot write the autotune cache {path} ({type(e).__name__}: {e}); "
                                    "the forms measured are kept for this process only")


def pick(seconds, default, margin=MARGIN):
    """The form to use given {form: median seconds}: the fastest, if it beats `default` by more than
    `margin` (relative), else `default`."""
    best = min(seconds, key=seconds.get)
    return best if seconds[best] < (1.0 - margin) * seconds[default] else default


def decide(k, measure, default, forms):
    """The form for key `k`: this process's decision, else the cache file's, else `measure()` ->
    {form: median seconds} (then kept and written). `forms` are the valid answers (a cached entry
    naming another is measured again)."""
    global measurements
    with _lock:
        if k in _decisions:
            return _decisions[k]["form"]
        path = cache_path()
        entry = _read_entries(path).get(k)
        if entry is None or entry["form"] not in forms:
            seconds = measure()
            measurements += 1
            entry = {"form": pick(seconds, default), "ms": {f: round(1e3 * s, 4) for f, s in seconds.items()},
                     "measured": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
            _write_entry(path, k, entry)
        _decisions[k] = entry
        return entry["form"]


def time_interleaved(fns, reps=15, warmup=2, budget_s=1.0, min_reps=5):
    """{name: median seconds} of argument-less callables returning tensors, called in turn (so that
    each sees the same machine load): `warmup` calls each, then up to `reps` rounds, fewer (at least
    `min_reps`) once the rounds have taken `budget_s`."""
    def run(fn):
        for t in fn():
            t.numpy()

    for fn in fns.values():
        for _ in range(warmup):
            run(fn)
    times = {name: [] for name in fns}
    start = time.perf_counter()
    for r in range(reps):
        names = list(fns)[r % len(fns):] + list(fns)[:r % len(fns)]
        for name in names:
            t0 = time.perf_counter()
            run(fns[name])
            times[name].append(time.perf_counter() - t0)
        if r + 1 >= min_reps and time.perf_counter() - start > budget_s:
            break
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}
