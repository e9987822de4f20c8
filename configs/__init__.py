"""Named training configurations: one small Python file per setting, `configs/<name>.py`, holding

    FLAGS = dict(...)   # train.py flag names (argparse dests) -> values typed as argparse gives them
    TARGET = "..."      # the result the setting should reach, and where that figure comes from

    flags, target = configs.load("cifar10")             # by name
    flags, target = configs.load("path/to/mine.py")     # or by path

Flags given on the command line are meant to override a config's FLAGS; `to_argv(flags)` gives the
command-line form.
"""
import importlib.util
import os

FOLDER = os.path.dirname(os.path.abspath(__file__))
VALUE_TYPES = (bool, int, float, str)


def available():
    """Names of the configs in this folder, sorted."""
    return sorted(f[:-3] for f in os.listdir(FOLDER) if f.endswith(".py") and not f.startswith("_"))


def _resolve(name_or_path):
    """The file of a config name or path; a ValueError naming the available configs otherwise."""
    if not isinstance(name_or_path, (str, os.PathLike)) or not str(name_or_path):
        raise ValueError(f"config {name_or_path!r}: expected a config name ({', '.join(available())}) "
                         f"or the path of a .py file")
    text = os.fspath(name_or_path)
    looks_like_path = text.endswith(".py") or os.sep in text or (os.altsep and os.altsep in text)
    if looks_like_path:
        if not os.path.isfile(text):
            raise ValueError(f"config file {text!r} does not exist")
        return text
    path = os.path.join(FOLDER, text + ".py")
    if text.startswith("_") or not os.path.isfile(path):
        raise ValueError(f"unknown config {text!r}; available: {', '.join(available())} "
                         f"(or pass the path of a .py file)")
    return path


def check(flags, target, where):
    """Raises ValueError unless flags is a {str: bool|int|float|str} dict and target a non-empty str."""
    if not isinstance(flags, dict):
        raise ValueError(f"{where}: FLAGS is a {type(flags).__name__}; expected a dict of train.py flag names "
                         f"to values")
    for key, value in flags.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"{where}: FLAGS key {key!r} is not a flag name (expected a str such as 'depth')")
        if not isinstance(value, VALUE_TYPES):
            raise ValueError(f"{where}: FLAGS[{key!r}] = {value!r} is a {type(value).__name__}; expected "
                             f"bool, int, float or str, as argparse gives")
    if not isinstance(target, str) or not target.strip():
        raise ValueError(f"{where}: TARGET is {target!r}; expected a non-empty str stating the result to reach")


def to_argv(flags):
    """The command-line form of flags: --key value, a bare --key for True, nothing for False."""
    argv = []
    for key, value in flags.items():
        if value is True:
            argv.append(f"--{key}")
        elif value is not False:
            argv += [f"--{key}", str(value)]
    return argv


def load(name_or_path):
    """(flags, target) of a config given by name (`cifar10`) or by the path of a .py file.

    flags is a new dict each call, so callers may change it.
    """
    path = _resolve(name_or_path)
    spec = importlib.util.spec_from_file_location(f"_glow_config_{os.path.basename(path)[:-3]}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except (SyntaxError, NameError, ImportError) as e:
        raise ValueError(f"config {path!r} cannot be read: {type(e).__name__}: {e}") from None
    for name in ("FLAGS", "TARGET"):
        if not hasattr(module, name):
            raise ValueError(f"config {path!r} defines no {name}; expected FLAGS = dict(...) (train.py flag "
                             f"names to values) and TARGET = '...' (the result it should reach)")
    check(module.FLAGS, module.TARGET, f"config {path!r}")
    return dict(module.FLAGS), module.TARGET
