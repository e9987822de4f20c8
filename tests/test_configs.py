"""Tests for configs/: every named config loads, states its paper figure, matches the original README
command quoted in its docstring and names only real train.py flags; the loader's errors."""
import argparse
import re

import pytest

import configs
import data_loaders
from glow_tf import GlowConfig

PAPER_TABLE_2 = {"cifar10": "3.35", "imagenet32": "4.09", "imagenet64": "3.81", "lsun64_bedroom": "2.38",
                 "lsun64_tower": "2.46", "lsun64_church": "2.67"}
MODEL_FIELDS = ("image_size", "n_levels", "depth", "width", "flow_permutation", "flow_coupling", "learntop",
                "ycond", "n_bits_x", "weight_y", "lu")
FLAG_ALIASES = {"n_level": "n_levels"}  # the original README's abbreviation, expanded by argparse


def quoted_command(doc):
    """{flag: value} of the `python train.py ...` command quoted in a docstring; alternatives such as
    [0/1/2] become a tuple, a flag without a value is True."""
    text = " ".join(doc.split())
    match = re.search(r"python train\.py ((?:--\w+(?:[ =](?:\[[^\]]*\]|[^\s`-][^\s`]*))? ?)+)", text)
    assert match, f"no `python train.py ...` command in {doc!r}"
    flags = {}
    for name, value in re.findall(r"--(\w+)(?:[ =](\[[^\]]*\]|[^\s`-][^\s`]*))?", match.group(1)):
        name = FLAG_ALIASES.get(name, name)
        flags[name] = tuple(value[1:-1].split("/")) if value.startswith("[") else (value or True)
    return flags


def test_every_config_loads_with_a_target():
    names = configs.available()
    assert {"cifar10", "imagenet32", "imagenet64", "celeba256", "mnist", "digits", "tiny", "lsun64_bedroom",
            "lsun64_tower", "lsun64_church", "lsun128_bedroom"} <= set(names)
    for name in names:
        flags, target = configs.load(name)
        assert flags and isinstance(target, str) and target.strip(), name
        assert flags["problem"] in data_loaders.PROBLEMS, name


@pytest.mark.parametrize("name, figure", sorted(PAPER_TABLE_2.items()))
def test_paper_configs_state_the_table_2_figure(name, figure):
    flags, target = configs.load(name)
    assert re.search(rf"(?<![\d.]){re.escape(figure)} bits/dim", target), target
    assert flags["n_bits_x"] == 8  # the table is 8-bit


@pytest.mark.parametrize("name", [n for n in configs.available() if n not in ("digits", "tiny")])
def test_config_is_the_original_command_it_quotes(name):
    import importlib.util
    spec = importlib.util.spec_from_file_location("c", f"{configs.FOLDER}/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    command = quoted_command(module.__doc__)
    flags = module.FLAGS
    assert set(flags) == set(command), f"{name}: FLAGS {sorted(flags)} vs the quoted command {sorted(command)}"
    for key, value in flags.items():
        quoted = command[key]
        options = quoted if isinstance(quoted, tuple) else (quoted,)
        if isinstance(value, bool):
            assert quoted is True and value is True, (name, key)
        else:
            assert any(type(value)(o) == value for o in options), f"{name}: {key}={value!r}, command says {quoted}"


@pytest.mark.parametrize("name", configs.available())
def test_model_flags_make_a_valid_model(name):
    flags, _ = configs.load(name)
    GlowConfig(**{k: v for k, v in flags.items() if k in MODEL_FIELDS})  # e.g. image_size divisible by 2**L


def test_keys_and_types_are_train_py_flags():
    from glow_tf.cli.train import build_parser
    parser = build_parser()
    actions = {a.dest: a for a in parser._actions}
    for name in configs.available():
        flags, _ = configs.load(name)
        for key, value in flags.items():
            assert key in actions, f"{name}: {key!r} is not a train.py flag"
            action = actions[key]
            if isinstance(action, argparse._StoreTrueAction):
                assert value is True or value is False, f"{name}: {key} is a switch; got {value!r}"
            elif action.type in (int, float, str):
                assert type(value) is action.type, f"{name}: {key}={value!r}, argparse gives {action.type.__name__}"
            if action.choices:
                assert value in action.choices, (name, key, value)


@pytest.mark.parametrize("name", configs.available())
def test_train_py_parses_the_flags_back_to_the_same_values(name):
    """Through the command line: every key is a train.py flag and argparse gives the config's value."""
    from glow_tf.cli.train import parse_config
    flags, _ = configs.load(name)
    parsed = vars(parse_config(configs.to_argv(flags)))
    assert {k: parsed[k] for k in flags} == flags
    assert all(type(parsed[k]) is type(v) for k, v in flags.items()), name


def test_config_flag_changes_exactly_the_configs_flags():
    """train.py --config tiny differs from the defaults in the config's flags and nothing else."""
    from glow_tf.cli.train import parse_config
    parsed, default = vars(parse_config(["--config", "tiny"])), vars(parse_config([]))
    changed = {k: v for k, v in parsed.items() if v != default[k] and k != "config"}
    assert changed == configs.load("tiny")[0] and parsed["config"] == "tiny"


def test_to_argv():
    assert configs.to_argv(dict(depth=3, learntop=True, ycond=False, lr=0.001, flow_coupling="1")) == \
        ["--depth", "3", "--learntop", "--lr", "0.001", "--flow_coupling", "1"]


def test_load_by_path_returns_a_fresh_copy(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text('FLAGS = dict(problem="digits", depth=3)\nTARGET = "whatever it reaches"\n')
    flags, target = configs.load(str(path))
    assert (flags, target) == ({"problem": "digits", "depth": 3}, "whatever it reaches")
    flags["depth"] = 99
    assert configs.load(str(path))[0]["depth"] == 3
    a, _ = configs.load("cifar10")
    a["depth"] = 1
    assert configs.load("cifar10")[0]["depth"] == 32


@pytest.mark.parametrize("text, error", [
    ('TARGET = "x"\n', "defines no FLAGS"),
    ('FLAGS = dict(depth=3)\n', "defines no TARGET"),
    ('FLAGS = [("depth", 3)]\nTARGET = "x"\n', "FLAGS is a list; expected a dict"),
    ('FLAGS = {3: "depth"}\nTARGET = "x"\n', "FLAGS key 3 is not a flag name"),
    ('FLAGS = {"--depth": 3}\nTARGET = "x"\n', "FLAGS key '--depth' is not a flag name"),
    ('FLAGS = dict(depth=[3])\nTARGET = "x"\n', r"FLAGS\['depth'\] = \[3\] is a list; expected bool, int"),
    ('FLAGS = dict(depth=3)\nTARGET = ""\n', "TARGET is ''; expected a non-empty str"),
    ('FLAGS = dict(depth=3\n', "cannot be read: SyntaxError"),
])
def test_bad_files_are_named_with_what_was_expected(tmp_path, text, error):
    path = tmp_path / "bad.py"
    path.write_text(text)
    with pytest.raises(ValueError, match=error) as info:
        configs.load(str(path))
    assert str(path) in str(info.value)


def test_unknown_name_lists_the_available_configs():
    with pytest.raises(ValueError, match=r"unknown config 'cifar100'; available: .*cifar10, .*imagenet64.*tiny"):
        configs.load("cifar100")
    with pytest.raises(ValueError, match="unknown config '__init__'"):
        configs.load("__init__")
    with pytest.raises(ValueError, match="does not exist"):
        configs.load("no/such/config.py")
