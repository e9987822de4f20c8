"""Download OpenAI's published CelebA-HQ Glow (the frozen graph the original demo runs) and its attribute
directions, then check them:

  graph_unoptimized.pb   the 256x256, 6-level, 5-bit model as a frozen TF1 GraphDef (openai/glow
                         demo/script.sh, its commented-out line for machines without blocksparse)
  z_manipulate.npy       float32 [40, 196608]: the 40 CelebA attribute directions (demo/get_manipulators.py)

Checks: each file has the length the server announced (a cut download is refused), z_manipulate.npy
is exactly the bare float32 [40, 256*256*3] array (31,457,408 bytes), and the graph is a GraphDef
holding every tensor the backend needs (glow_tf.original_graph). Files are written under a temporary
name and renamed once checked, so a failed run leaves nothing half-written; files already there
and valid are kept.

  python scripts/download_celeba_hq_model.py --out models/celeba_hq
  python -m glow_tf serve --graph models/celeba_hq/graph_unoptimized.pb --directions models/celeba_hq/z_manipulate.npy

Without internet it stops with one line naming the host it could not reach (exit status 2).
"""
import argparse
import os
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BASE = "https://openaipublic.azureedge.net/glow-demo"
FILES = {"graph_unoptimized.pb": "large3/graph_unoptimized.pb", "z_manipulate.npy": "z_manipulate.npy"}  # under BASE
N_DIMS = 256 * 256 * 3
NPY_HEADER = 128  # numpy format 1.0 header of a float32 [40, 196608] array
Z_MANIPULATE_BYTES = NPY_HEADER + 40 * N_DIMS * 4


class DownloadError(Exception):
    pass


def fetch(url, path, timeout):
    """Downloads url to path (via path.part); DownloadError on a network error or a short body."""
    part = path + ".part"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            expected = response.headers.get("Content-Length")
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            with open(part, "wb") as f:
                shutil.copyfileobj(response, f, 1 << 20)
        got = os.path.getsize(part)
        if expected is not None and got != int(expected):
            raise DownloadError(f"{url}: got {got} bytes of the {expected} the server announced (cut short; run again)")
        return part
    except (urllib.error.URLError, OSError) as e:
        if os.path.exists(part):
            os.remove(part)
        reason = getattr(e, "reason", None) or e
        host = urllib.parse.urlparse(url).netloc
        raise DownloadError(f"cannot download {url}: {reason} (no internet? the host is {host})") from None
    except DownloadError:
        os.remove(part)
        raise


def check(name, path):
    """DownloadError unless the file at path is what `name` should be."""
    if name == "z_manipulate.npy":
        import numpy as np  # noqa: PLC0415

        size = os.path.getsize(path)
        if size != Z_MANIPULATE_BYTES:
            raise DownloadError(f"{name}: {size} bytes; expected {Z_MANIPULATE_BYTES} (float32 [40, {N_DIMS}])")
        array = np.load(path, allow_pickle=False)
        if array.shape != (40, N_DIMS) or array.dtype != np.float32:
            raise DownloadError(f"{name}: {array.dtype} {array.shape}; expected float32 (40, {N_DIMS})")
    else:
        from glow_tf.original_graph import OriginalGraph  # noqa: PLC0415

        try:
            graph = OriginalGraph(path)
        except ValueError as e:
            raise DownloadError(str(e)) from None
        if graph.config.image_size != 256 or graph.config.n_levels != 6:
            raise DownloadError(f"{name}: a {graph.config.image_size}px graph of {graph.config.n_levels} levels; "
                                f"expected the 256px, 6-level CelebA-HQ model")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="celeba_hq", help="folder for the two files (default ./celeba_hq)")
    parser.add_argument("--timeout", type=float, default=30, help="seconds to wait for the server (default 30)")
    parser.add_argument("--base_url", default=BASE, help=f"where the files are (default {BASE}, as the original's "
                                                          f"demo/script.sh; a mirror keeps the same paths)")
    args = parser.parse_args(argv)
    try:
        for name, tail in FILES.items():
            url = f"{args.base_url.rstrip('/')}/{tail}"
            path = os.path.join(args.out, name)
            if os.path.exists(path):
                check(name, path)
                print(f"{path}: already there and valid", file=sys.stderr)
                continue
            print(f"downloading {url}", file=sys.stderr, flush=True)
            part = fetch(url, path, args.timeout)
            try:
                check(name, part)
            except DownloadError:
                os.remove(part)
                raise
            os.replace(part, path)
            print(f"{path}: {os.path.getsize(path)} bytes, checked", file=sys.stderr)
    except DownloadError as e:
        print(f"download_celeba_hq_model.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
