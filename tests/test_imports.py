"""Which way imports go (docs/architecture.md), read statically from every .py file with `ast`, function-level
imports included: data_loaders never imports glow_tf; no import cycle runs through glow_tf and data_loaders;
neither package imports the programs and tooling around it (train.py, sample.py, bench/, tests/, scripts/)."""
import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("glow_tf", "data_loaders")
# the modules around the packages, by the names they are imported under (scripts run with their folder on
# sys.path: bench/common.py is `common`, tests/horovod_launch.py is `horovod_launch`)
OUTSIDE = {"train": "train.py", "sample": "sample.py", "bench": "bench/", "tests": "tests/", "scripts": "scripts/",
           **{f[:-3]: f"{folder}/{f}" for folder in ("bench", "tests", "scripts")
              for f in sorted(os.listdir(os.path.join(REPO, folder))) if f.endswith(".py")}}


def module_files(package):
    """{dotted module name: path} of a package's .py files."""
    found = {}
    for root, dirs, files in os.walk(os.path.join(REPO, package)):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__pycache__")))
        for f in sorted(files):
            if f.endswith(".py"):
                parts = os.path.relpath(os.path.join(root, f), REPO)[:-3].split(os.sep)
                found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = os.path.join(root, f)
    return found


def imports(path, module):
    """[(imported name, line)] of every import statement in a file, at any depth; `from a import b` gives a.b
    (a submodule, or a name of module a); relative imports are resolved against `module`."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out += [(base if alias.name == "*" else f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return out


def graph():
    """{module: {imported module of glow_tf or data_loaders: line}} over both packages."""
    modules = {name: path for package in PACKAGES for name, path in module_files(package).items()}
    edges = {}
    for name, path in modules.items():
        edges[name] = {}
        for target, line in imports(path, name):
            while target and target not in modules:  # glow_tf.latents.check_labels -> glow_tf.latents
                target = target.rpartition(".")[0]
            if target and target != name:
                edges[name].setdefault(target, line)
    return modules, edges


def cycles(edges):
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _where(modules, source, target, edges):
    return f"{os.path.relpath(modules[source], REPO)}:{edges[source][target]} imports {target}"


def test_the_packages_were_found():
    modules, edges = graph()
    assert {"glow_tf", "glow_tf.model", "glow_tf.cli.quiet", "data_loaders", "data_loaders.core"} <= set(modules)
    assert "data_loaders.image_files" in edges["glow_tf.images"]  # the one direction: glow_tf -> data_loaders
    assert {"train", "sample", "common", "conftest", "horovod_launch"} <= set(OUTSIDE)


def test_data_loaders_imports_nothing_of_glow_tf():
    modules, edges = graph()
    wrong = [_where(modules, source, target, edges) for source in sorted(edges) if source.startswith("data_loaders")
             for target in edges[source] if target.split(".")[0] == "glow_tf"]
    assert not wrong, "data_loaders is the lower layer and must not import glow_tf (docs/architecture.md):\n" + \
        "\n".join(wrong)


def test_no_import_cycle_between_glow_tf_and_data_loaders():
    _, edges = graph()
    across = [c for c in cycles(edges) if len({m.split(".")[0] for m in c}) > 1]
    assert across == [], "import cycles through both packages (each list: modules that import each other)"


def test_no_import_cycle_within_a_package():
    """Layers inside a package go one way too (e.g. elastic training is a plug-in of the training loop: the
    loop must not import it back)."""
    modules, edges = graph()
    found = {" -> ".join(c): [_where(modules, a, b, edges) for a in c for b in c if b in edges[a]] for c in cycles(edges)}
    assert not found, "import cycles (modules that import each other, and where):\n" + "\n".join(
        f"{name}: {'; '.join(where)}" for name, where in found.items())


@pytest.mark.parametrize("package", PACKAGES)
def test_the_packages_import_none_of_the_programs_around_them(package):
    wrong = []
    for name, path in module_files(package).items():
        for target, line in imports(path, name):
            if target.split(".")[0] in OUTSIDE:
                wrong.append(f"{os.path.relpath(path, REPO)}:{line} imports {target} ({OUTSIDE[target.split('.')[0]]})")
    assert not wrong, "the library must not import its programs, benchmarks or tests:\n" + "\n".join(sorted(set(wrong)))


def test_the_checks_see_function_level_relative_and_cyclic_imports(tmp_path):
    """The reader and the cycle finder on a planted package: a function-level import, a relative one and a
    three-module cycle are all found."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    import train\n    from .b import g\n")
    (pkg / "b.py").write_text("from pkg import c\n")
    (pkg / "c.py").write_text("from . import a\n")
    found = imports(str(pkg / "a.py"), "pkg.a")
    assert ("train", 2) in found and ("pkg.b.g", 3) in found
    assert ("pkg.a", 1) in imports(str(pkg / "c.py"), "pkg.c")
    assert cycles({"pkg.a": {"pkg.b": 3}, "pkg.b": {"pkg.c": 1}, "pkg.c": {"pkg.a": 1}, "pkg": {}}) == \
        [["pkg.a", "pkg.b", "pkg.c"]]
