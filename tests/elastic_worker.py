"""One worker of tests/test_elastic.py's elastic runs: records its pid, runs train.main, then saves
the model's final variables, so that the test can kill a chosen worker and compare the survivors.

    python tests/elastic_worker.py OUTDIR -- TRAIN_ARGS...

While OUTDIR/hold_lone_commits exists, a worker left alone holds each commit until Horovod tells it
that the hosts changed, so that a worker added by the test joins before the run can end, however
fast the machine.
"""
import os
import sys
import time

import numpy as np


def hold_lone_commits(marker, timeout=300):
    from glow_tf import elastic  # noqa: PLC0415

    commit = elastic.ElasticState.commit

    def held(state):
        deadline = time.time() + timeout
        while (os.path.exists(marker) and state._dist.size == 1 and state._host_messages.empty()
               and time.time() < deadline):
            time.sleep(0.05)  # polls Horovod's notification queue
        commit(state)

    elastic.ElasticState.commit = held


def main():
    outdir, train_args = sys.argv[1], sys.argv[sys.argv.index("--") + 1:]
    name = f"{os.environ.get('HOROVOD_HOSTNAME', 'host')}_{os.environ.get('HOROVOD_LOCAL_RANK', '0')}_{os.getpid()}"
    with open(os.path.join(outdir, f"started_rank{os.environ.get('HOROVOD_RANK', '0')}_{name}"), "w") as f:
        f.write(str(os.getpid()))
    import train  # noqa: PLC0415 (after the pid is recorded: importing TensorFlow takes seconds)
    hold_lone_commits(os.path.join(outdir, "hold_lone_commits"))
    glow = train.main(train_args)
    path = os.path.join(outdir, f"final_{name}.npz")
    np.savez(path + ".tmp.npz", *[v.numpy() for v in glow.variables])
    os.replace(path + ".tmp.npz", path)


if __name__ == "__main__":
    main()
