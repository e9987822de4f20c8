"""One worker of tests/test_elastic.py's elastic runs: records its pid, runs train.main, then saves
the model's final variables, so that the test can kill a chosen worker and compare the survivors.

    python tests/elastic_worker.py OUTDIR -- TRAIN_ARGS...
"""
import os
import sys

import numpy as np


def main():
    outdir, train_args = sys.argv[1], sys.argv[sys.argv.index("--") + 1:]
    name = f"{os.environ.get('HOROVOD_HOSTNAME', 'host')}_{os.environ.get('HOROVOD_LOCAL_RANK', '0')}_{os.getpid()}"
    with open(os.path.join(outdir, f"started_rank{os.environ.get('HOROVOD_RANK', '0')}_{name}"), "w") as f:
        f.write(str(os.getpid()))
    import train  # noqa: PLC0415 (after the pid is recorded: importing TensorFlow takes seconds)
    glow = train.main(train_args)
    path = os.path.join(outdir, f"final_{name}.npz")
    np.savez(path + ".tmp.npz", *[v.numpy() for v in glow.variables])
    os.replace(path + ".tmp.npz", path)


if __name__ == "__main__":
    main()
