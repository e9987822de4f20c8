"""Elastic training (train.py --elastic 1) on Horovod's elastic API: workers may leave (a crash, a lost
host) or join (the host discovery script lists more slots) while a run goes on.

The training state is committed in memory every --elastic_commit_steps steps and at every epoch end.
When a collective fails because a worker is gone, the survivors roll every variable and the epoch's
partial figures back to the last commit, Horovod re-forms the ring, and the state of the new rank 0
is broadcast to every worker (a new worker gets it the same way). Horovod gives the lowest ranks to
the oldest hosts, so rank 0 after a reset always holds the committed state.

The data position is `DataPosition`: the world size it was reached with, the step it was set at and
the batch index of every worker's stream then. In a world of unchanged size worker r reads batch
`batch + (step - set_at)` of stream (r, size), exactly what a run without elastic reads. When the
size changes from S to S', each new stream continues at `ceil(k * S / S')` with k the batch every
old stream had reached: every stream stands at the same fraction of its passes over its shard, so
the number of images read per pass over the data set is unchanged (see docs/elastic.md).

In the training loop elastic training is one hook (glow_tf.training.hooks.ElasticCommits, holding an
ElasticState); train_elastic runs the loop
under Horovod's elastic API. docs/elastic.md says how to start such runs and what survives what.
"""
import contextlib
import copy
import dataclasses
import math
import os

import tensorflow as tf
from horovod.common.elastic import ObjectState, run_fn
from horovod.common.exceptions import HorovodInternalError

from glow_tf.errors import WorldError
from glow_tf.seeds import worker_seed
from glow_tf.training import loop
from glow_tf.training.hooks import ElasticCommits, default_hooks
from glow_tf.training.restore import restore_data_position
from glow_tf.training.setup import run_settings, run_shape



class DataPosition(tf.Module):
    """Where every worker's data stream stands (see the module docstring); saved with checkpoints."""

    def __init__(self, size, step, batch):
        super().__init__(name="data_position")
        self.size = tf.Variable(size, dtype=tf.int64, trainable=False, name="size")
        self.set_at = tf.Variable(step, dtype=tf.int64, trainable=False, name="set_at")
        self.batch = tf.Variable(batch, dtype=tf.int64, trainable=False, name="batch")

    def start_batch(self, step, size):
        """The batch each worker of a world of `size` reads at `step`; re-anchors the position when
        the size differs from the one it was reached with."""
        k = int(self.batch) + step - int(self.set_at)
        if size != int(self.size):
            k = math.ceil(k * int(self.size) / size)
            self.size.assign(size), self.set_at.assign(step), self.batch.assign(k)
        return k


class ElasticState(ObjectState):
    """TensorFlow variables and Python objects that Horovod's elastic loop keeps consistent.

    `commit()` copies them to host memory (and raises HostsUpdatedInterrupt when hosts changed);
    after a failed collective `restore()` puts the last commit back; `sync()` gives every worker
    rank 0's values. Objects are deep-copied at each commit, so later changes do not leak into it.
    """

    def __init__(self, dist, variables, step, holds_state, **objects):
        self._dist = dist
        self._holds_state = holds_state  # this worker's variables are the run's (not a fresh joiner's)
        self._variables = list(variables)
        self._values = None
        self._step = step  # the run's step counter (one of `variables`), for the rollback line
        super().__init__(bcast_object=dist.hvd.broadcast_object, get_rank=dist.hvd.rank, **objects)
        self._save_variables()

    def _save_variables(self):
        self._values = [v.numpy().copy() for v in self._variables]

    def save(self):
        self._save_variables()
        self._saved_state = {k: copy.deepcopy(getattr(self, k)) for k in self._saved_state}

    def restore(self):
        reached = int(self._step)
        for v, value in zip(self._variables, self._values):
            v.assign(value)
        self._set_attrs()
        print(f"elastic: a worker was lost at step {reached}: rolled back to the commit at step "
              f"{int(self._step)} ({reached - int(self._step)} steps to redo)", flush=True)

    def _set_attrs(self):
        for attr, value in self._saved_state.items():
            setattr(self, attr, copy.deepcopy(value))

    def sync(self):
        with _collectives_may_fail():
            if not self._dist.allgather_object(self._holds_state)[0]:
                raise WorldError("stopping: rank 0 stopped before its state reached the other workers (its error "
                                 "is printed above)")
            self._dist.broadcast_variables(self._variables, root_rank=0)
            self._save_variables()
            self._saved_state = self._bcast_object(self._saved_state)
            self._set_attrs()
        self._holds_state = True


@contextlib.contextmanager
def _collectives_may_fail():
    """A failed Horovod collective (TensorFlow raises an OpError naming Horovod) becomes the
    HorovodInternalError that Horovod's elastic loop recovers from."""
    try:
        yield
    except tf.errors.OpError as e:
        if "Horovod" not in str(e):
            raise
        raise HorovodInternalError(e) from e


def run_elastic(train, state):
    """Runs `train(state)` under Horovod's elastic loop until it returns; a failed Horovod collective
    (TensorFlow raises it as an OpError naming Horovod) is the recoverable HorovodInternalError."""

    def wrapped(state):
        with _collectives_may_fail():
            return train(state)

    def reset():
        hvd = state._dist.hvd
        hvd.shutdown()
        hvd.init()

    return run_fn(wrapped, reset)(state)


def train_elastic(run, plan):
    """The training loop under Horovod's elastic API: entered again after every reset (a worker lost
    or added) with every worker holding the last commit of the lowest surviving rank, the data
    re-sharded for the new world and the position re-derived (DataPosition)."""
    state = run.state
    run.position = DataPosition(run.dist.size, int(state.step), int(state.step))
    if plan.kind == "run" and plan.prefix is not None:  # the chief: a checkpoint of an elastic run holds one
        restore_data_position(plan.prefix, run.position)
    variables = [*run.glow.variables, *run.optimizer.variables, *state.variables, *run.position.variables]
    elastic_state = ElasticState(run.dist, variables, state.step, holds_state=run.dist.is_chief,
                                 progress=loop.EpochProgress(), resumed=run.resumed)

    def train(elastic_state):
        dist, config = run.dist, run.config
        run.resumed, run.progress = elastic_state.resumed, elastic_state.progress
        run.seed = worker_seed(config.seed, dist.rank, dist.size)  # the original's per-worker seed, in this world
        with dist.stop_together():
            run.data = run.load_data(config, dist)  # this worker's shard of the new world
        run.shape = dataclasses.replace(run_shape(config, run.data, dist.size, run.model_config),
                                        train_its=run.shape.train_its)
        dist.check_same(run_settings(config, run.shape, run.model_config))
        start = run.position.start_batch(int(state.step), dist.size)
        if dist.is_chief:
            print(f"elastic: {dist.size} worker(s) from step {int(state.step)} (epoch {int(state.epoch) + 1}, "
                  f"{run.progress.steps} of its steps done), data batch {start} of each worker's stream", flush=True)
        # Log lines after the committed epoch were written by a world that did not reach the commit.
        committed = int(state.epoch) if run.resumed or int(state.step) > 0 else -1
        loop.train(run, [*default_hooks(run, resume_epoch=committed), ElasticCommits(elastic_state)], start)

    run_elastic(train, elastic_state)
    return run.glow
