"""The backend for OpenAI's published CelebA-HQ graph (glow_tf/original_graph.py) on a fixture graph made
by scripts/make_original_graph.py from the original's own model.py (tests/fixtures/original_graph): its
outputs equal the ones a TF1 session computed on that graph, Glow's latent API and the command line work
on it (`--graph`), `serve --graph` answers over HTTP, and bad graph files are one clear line."""
import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from glow_tf import directions
from glow_tf.__main__ import main
from glow_tf.demo.app import data_url
from glow_tf.original_graph import GraphError, OriginalGraph

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "original_graph"
GRAPH = FIXTURE / "graph.pb"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def graph():
    return OriginalGraph(str(GRAPH))


@pytest.fixture(scope="module")
def io():
    return dict(np.load(FIXTURE / "io.npz"))


def flat(io, prefix):
    n = len(io["x"])
    return np.concatenate([io[f"{prefix}_{i}"].reshape(n, -1) for i in range(3)], axis=1)


def test_outputs_equal_the_graphs_own(graph, io):
    """encode (the generator's noise fed to the graph's noise op) and decode give what the TF1 session
    gave: the same latents to float round-off and the same uint8 pixels."""
    meta = json.loads((FIXTURE / "meta.json").read_text())
    assert graph.config.image_size == 16 and graph.config.n_levels == 3 and graph.config.n_bits_x == 5
    assert [list(s) for s in graph.config.eps_shapes] == meta["eps_shapes"]
    z = graph.encode(io["x"], noise=io["noise"], batch_size=2)
    np.testing.assert_allclose(z, flat(io, "enc_eps"), rtol=0, atol=1e-6)
    x = graph.decode(flat(io, "dec_eps"), batch_size=2)
    np.testing.assert_array_equal(x, io["dec_x"])
    assert 0.05 < np.mean(io["dec_x"] > 0) and len(np.unique(io["dec_x"])) > 16  # a real image, not saturated


def test_the_latent_api_on_the_graph(graph, io):
    """The graph is a flow: encode then decode with the bin-centre noise gives back the 5-bit input;
    sample, manipulate and interpolate are Glow's own methods on its encode/decode."""
    x = io["x"]
    z = graph.encode(x, noise="centre")
    np.testing.assert_array_equal(graph.decode(z), x // 8 * 8)
    np.testing.assert_array_equal(graph.reconstruct(x, noise="centre"), x // 8 * 8)
    seeded = graph.encode(x, noise="random", seed=4)
    np.testing.assert_array_equal(seeded, graph.encode(x, noise="random", seed=4))
    assert not np.array_equal(seeded, z)
    samples = graph.sample(3, 0.7, seed=1)
    unit = np.stack([np.random.default_rng([1, i]).standard_normal(768, dtype=np.float32) for i in range(3)])
    np.testing.assert_array_equal(samples, graph.decode(0.7 * unit))
    d = np.random.default_rng(0).standard_normal(768).astype(np.float32)
    moved = graph.manipulate(z[0], d, [0.0, 1.0])
    np.testing.assert_array_equal(moved, graph.decode(np.stack([z[0], z[0] + d])))
    frames = graph.interpolate(x[0], x[1], 3, noise="centre")
    np.testing.assert_array_equal(frames[[0, 2]], x[:2] // 8 * 8)
    with pytest.raises(ValueError, match="run unconditionally"):
        graph.encode(x, y=1)


def cli(*argv):
    return subprocess.run([sys.executable, "-m", "glow_tf", *map(str, argv)], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=300)


def test_commands_with_graph(graph, io, tmp_path):
    """sample, encode, manipulate and interpolate with --graph, through the command line's main()
    (the bad-input tests below run the real entry point in a process of its own)."""
    faces = tmp_path / "faces"
    faces.mkdir()
    for i, image in enumerate(io["x"]):
        Image.fromarray(image).save(faces / f"{i}.png")
    z_manipulate = np.random.default_rng(2).standard_normal((40, 768)).astype(np.float32)
    np.save(tmp_path / "z_manipulate.npy", z_manipulate)
    common = ["--graph", GRAPH, "--quiet"]
    out = run("sample", *common, "--n", 4, "--n_cols", 4, "--seed", 5, "--temperature", 0.7, "--out", tmp_path / "s.png")
    assert out == 0
    grid = np.asarray(Image.open(tmp_path / "s.png"))
    np.testing.assert_array_equal(grid, np.concatenate(list(graph.sample(4, 0.7, seed=5)), axis=1))
    out = run("encode", faces, *common, "--noise", "centre", "--out", tmp_path / "z.npz")
    assert out == 0
    np.testing.assert_array_equal(np.load(tmp_path / "z.npz")["eps"], graph.encode(io["x"], noise="centre"))
    out = run("manipulate", faces / "0.png", *common, "--directions", tmp_path / "z_manipulate.npy", "--attr",
              "Smiling", "--alphas", 0, 1, "--noise", "centre", "--out", tmp_path / "m.png")
    assert out == 0
    smiling = directions.load_directions(str(tmp_path / "z_manipulate.npy"))["Smiling"]
    z0 = graph.encode(io["x"][:1], noise="centre")[0]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "m.png")),
                                  np.concatenate(list(graph.decode(np.stack([z0, z0 + smiling]))), axis=1))
    out = run("interpolate", faces / "0.png", faces / "1.png", *common, "--steps", 3, "--noise", "centre",
              "--out", tmp_path / "i.png")
    assert out == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "i.png")),
                                  np.concatenate(list(graph.interpolate(io["x"][0], io["x"][1], 3, noise="centre")), 1))


def run(*argv):
    return main([str(a) for a in argv])


def one_error_line(result):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_bad_graph_files_are_one_line_and_write_nothing(tmp_path):
    """A file that is not a GraphDef, and a GraphDef without one of the demo's tensors (the encoder's
    level-1 eps removed): one line naming the file and what is missing; no output written."""
    out = tmp_path / "s.png"
    not_graph = tmp_path / "weights.pb"
    not_graph.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    line = one_error_line(cli("sample", "--graph", not_graph, "--out", out))
    assert "is not a TensorFlow GraphDef" in line and str(not_graph) in line
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(GRAPH.read_bytes())
    kept = [n for n in graph_def.node if n.name != "model/pool1/truediv_1"]
    del graph_def.node[:]
    graph_def.node.extend(kept)
    lacking = tmp_path / "lacking.pb"
    lacking.write_bytes(graph_def.SerializeToString())
    line = one_error_line(cli("sample", "--graph", lacking, "--out", out))
    assert "lacks the tensor 'model/pool1/truediv_1:0' (the encoder's level-1 eps)" in line
    assert not out.exists()
    with pytest.raises(GraphError, match="lacks the tensor 'model_1/Cast_9:0'"):
        OriginalGraph(str(GRAPH), names={"dec_x": "model_1/Cast_9"})


def test_download_script_without_internet_is_one_line(tmp_path):
    """The download script, pointed at a closed local port: one error line, exit 2, nothing written."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "download_celeba_hq_model.py"), "--out",
                             str(tmp_path / "m"), "--base_url", f"http://127.0.0.1:{port}/glow-demo"], env=ENV,
                            capture_output=True, text=True, timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("downloading")]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("download_celeba_hq_model.py: error: cannot download") and "Connection refused" in lines[0]
    assert not (tmp_path / "m").exists()


def test_serve_graph_over_http(graph, tmp_path):
    """`python -m glow_tf serve --graph G --directions z_manipulate.npy`: the 40 attribute sliders and a
    sample at T = 0.7 equal to the backend's own."""
    np.save(tmp_path / "z_manipulate.npy", np.random.default_rng(3).standard_normal((40, 768)).astype(np.float32))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "serve.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "glow_tf", "serve", "--graph", str(GRAPH), "--directions",
                             str(tmp_path / "z_manipulate.npy"), "--port", str(port), "--cpu"], cwd=ROOT, env=ENV,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 240
        while True:
            assert proc.poll() is None, (log.seek(0), log.read())[1]
            try:
                info = json.loads(urllib.request.urlopen(url + "/api/info", timeout=5).read())
                break
            except OSError:
                assert time.time() < deadline, "the server did not answer within 240 s"
                time.sleep(0.5)
        # the 40 attributes, in the face demo's order (glow_tf.demo.startup.FACE_ORDER first)
        assert sorted(info["directions"]) == sorted(directions.CELEBA_ATTRIBUTES) and info["image_size"] == 16
        assert info["directions"][0] == "Smiling" and info["face"] and info["can_align"]
        assert "graph.pb" in info["title"]
        request = urllib.request.Request(url + "/api/random", data=json.dumps({"temperature": 0.7, "seed": 9}).encode(),
                                         headers={"Content-Type": "application/json"})
        got = json.loads(urllib.request.urlopen(request, timeout=60).read())
        assert got["image"] == data_url(graph.sample(1, 0.7, seed=9)[0])
        assert b"<html" in urllib.request.urlopen(url + "/", timeout=10).read().lower()
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
