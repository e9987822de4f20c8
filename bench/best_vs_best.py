#!/usr/bin/env python
"""Best versus best: ours (glow-tf), the original release and tfp.bijectors.Glow, each timed at each
of its settings in the same run, and the ratio of each side's best setting to the other's.

    python bench/best_vs_best.py --original_dir path/to/openai_glow          # every task
    python bench/best_vs_best.py --original_dir path/to/openai_glow --tasks train:bench sample:celeba
    python bench/best_vs_best.py --quick                                     # a tiny model (the tests)

Tasks: `train:bench` (bench configuration, batch 16) and `train:cifar10` (CIFAR-10's, batch 4): images/s
of the whole training step (forward, backward, Adamax with Polyak averages; ours as train.py builds it,
the original's `m.train`, TFP's Glow as train_speed.py builds it); `sample:celeba` (CelebA-HQ's, batch
1: the latency of one sample) and `sample:cifar10` (batch 64): ours `make_sampler` / the decode under
XLA as sample_speed.py times them, the original's `m.sample`. TFP's Glow is timed for training only.

Settings (`--include`/`--exclude` filter them by name):
- kernel library: `eigen` (TF_ENABLE_ONEDNN_OPTS=0) or `onednn` (=1), read when TensorFlow starts;
- `xla=1`: ours `make_train_step(jit=True)` / sample_speed.py's `decode_jit`; TFP
  `tf.function(jit_compile=True)`; the original its session's global_jit_level ON_1 (TF1's switch),
  with TF_XLA_FLAGS=--tf_xla_cpu_global_jit so that it clusters CPU ops too;
- threads: TensorFlow's defaults (intra-op and inter-op pools of one thread per core), `2/1`
  (intra-op 2, inter-op 1) or `1/2` (intra-op 1, inter-op 2): on 2 cores the default lets two ops run
  at once, each splitting itself over both cores; 2/1 runs one op at a time over both; 1/2 runs two
  ops at once, each on one core (the original's best for training on the 2-core EPYC, 2026-12-03).
  More threads than cores only oversubscribe.
- ours only: the convolutions' form: `auto` (the default, each layer shape's form measured once and
  cached, glow_tf.bijectors.networks.conv_form) or every one forced to `plain` (the original's), which
  shows whether the automatic choice is ever slower than not choosing.

Protocol. The kernel library and the threads are fixed when a process starts, so each (side, library,
threads) is a worker process of its own (the original: per XLA setting too, a session option); ours
holds its XLA and form variants as separate traced steps of one model. (1) Screening: every setting,
`--screen` rounds x steps, workers of a few settings built and timed together,
interleaved. (2) Finals: for each side, its fastest screened setting under each kernel library, rebuilt
in a process of its own and timed interleaved, `--finals` rounds x steps; all finalists in one group when
they fit in `--memory_gb` (then each side's best is the fastest finalist of that group), else one group
per kernel library plus one of the sides' best screened settings, so that every ratio reported is of
two settings timed side by side. Figures are medians. A worker that dies (e.g. killed for memory) is
named in one line and the rest goes on; a worker that would not fit in the memory available is skipped
with a line. The ratios: training ours images/s / theirs (higher is better); sampling ours time /
theirs (lower is better), of each side's best, and per kernel library of each side's best under it.
"""
import argparse
import atexit
import fnmatch
import itertools
import os
import shutil
import subprocess
import sys
import tempfile

import common

LIBS = {"eigen": "0", "onednn": "1"}  # TF_ENABLE_ONEDNN_OPTS
THREADS = {"default": None, "2/1": [2, 1], "1/2": [1, 2]}  # [intra-op, inter-op]
FORMS = ("auto", "plain")
TASKS = {"train:bench": ("train", "bench", 16), "train:cifar10": ("train", "cifar10", 4),
         "sample:celeba": ("sample", "celeba", 1), "sample:cifar10": ("sample", "cifar10", 64)}
QUICK_TASKS = {"train:quick": ("train", "quick", 4), "sample:quick": ("sample", "quick", 2)}
GB_PER_WORKER = {"quick": 1.0, "bench": 1.5, "cifar10": 6.5, "celeba": 8.0}  # resident, measured (bench/README)
GOALS = {"train": 1.5, "sample": 0.35}  # best vs best: >= 1.5x the speed; <= 0.35x the time (CelebA-HQ)


# --- settings ---------------------------------------------------------------------------------
def settings(mode, sides, quick=False):
    """Every setting of every side for a task ("train" or "sample"): dicts with name, side, lib,
    threads, xla, form (ours only)."""
    out = []
    threads = ["default"] if quick else list(THREADS)
    for side in sides:
        if side == "tfp" and mode != "train":
            continue
        xlas = (0,) if quick and side == "tfp" else (0, 1)
        for lib, thr, xla in itertools.product(LIBS, threads, xlas):
            for form in (FORMS if side == "ours" else (None,)):
                name = f"{side} {lib} xla={xla} threads={thr}" + (f" {form}" if form else "")
                out.append({"name": name, "side": side, "lib": lib, "threads": thr, "xla": xla, "form": form})
    return out


def select(sets, include, exclude):
    keep = [s for s in sets if (not include or any(fnmatch.fnmatchcase(s["name"], p) for p in include))
            and not any(fnmatch.fnmatchcase(s["name"], p) for p in exclude or ())]
    return keep


def process_key(s):
    """Settings with the same key share a worker process (ours: XLA and form are per traced step)."""
    return (s["side"], s["lib"], s["threads"]) + (() if s["side"] == "ours" else (s["xla"],))


def worker_spec(sets, mode, config_name, batch, original_dir):
    """The worker process for settings sharing one process_key."""
    s = sets[0]
    spec = {"kind": s["side"], "mode": mode, "config": common.config_dict(config_name), "batch": batch,
            "env": {"TF_ENABLE_ONEDNN_OPTS": LIBS[s["lib"]]}, "threads": THREADS[s["threads"]],
            "settings": [{k: x[k] for k in ("name", "xla", "form")} for x in sets]}
    if s["side"] == "original":
        spec.update(original_dir=original_dir, xla=s["xla"], temperature=0.7)
        if s["xla"]:
            spec["env"]["TF_XLA_FLAGS"] = "--tf_xla_cpu_global_jit"
    elif s["side"] == "tfp":
        spec["jit"] = s["xla"]
    return spec


def groups(sets):
    """[(settings of one process)], the sides taking turns (so that load drifts hit each side alike)."""
    by_key = {}
    for s in sets:
        by_key.setdefault(process_key(s), []).append(s)
    by_side = {}
    for key, members in by_key.items():
        by_side.setdefault(key[0], []).append(members)
    return [g for row in itertools.zip_longest(*by_side.values()) for g in row if g]


# --- worker side ------------------------------------------------------------------------------
def build_worker(spec):
    """({setting name: step}, warm-up steps, info) for ours or TFP (the original's is original.build)."""
    import tensorflow as tf

    if spec.get("threads"):  # before TensorFlow's runtime starts
        tf.config.threading.set_intra_op_parallelism_threads(spec["threads"][0])
        tf.config.threading.set_inter_op_parallelism_threads(spec["threads"][1])
    if spec["kind"] == "tfp":
        import train_speed
        step, warmup, info = train_speed.build_tfp(spec)
        return {spec["settings"][0]["name"]: step}, warmup, info
    return build_ours(spec)


def build_ours(spec):
    """One model, one step function per setting (XLA on/off x conv form), each traced and first called
    inside its form (the form is read at tracing; each call enters it again, which costs nothing)."""
    import time

    import numpy as np

    from glow_tf import Glow, GlowConfig
    from glow_tf.bijectors import networks

    if spec["mode"] == "train":
        from glow_tf.distributed import Distributed
        from glow_tf.training import make_train_step

        glow, optimizer, _, (x, y, lr) = common.our_train_step(spec["config"], spec["batch"])

        def runner(xla):
            return common.train_step_runner(make_train_step(glow, optimizer, Distributed(), seed=0, jit=bool(xla)),
                                            x, y, lr)
    else:
        import sample_speed

        glow = Glow(GlowConfig(**spec["config"]), seed=0)
        glow.initialize(common.random_images(max(spec["batch"], 2), glow.config.image_size))

        def runner(xla):
            return sample_speed.sampler_step(glow, "decode_jit" if xla else "make_sampler", spec["batch"])

    def in_form(form, run):
        def step():
            with networks.conv_form(form):
                run()
        return step

    steps, first = {}, {}
    for s in spec["settings"]:
        steps[s["name"]] = step = in_form(s["form"], runner(s["xla"]))
        t0 = time.perf_counter()
        step()
        first[s["name"]] = round(time.perf_counter() - t0, 1)
    n_params = sum(int(np.prod(v.shape)) for v in glow.trainable_variables)
    return steps, 1, {"params": n_params, "first_step_s": first}


# --- parent side ------------------------------------------------------------------------------
def say(line):
    print(line, file=sys.stderr, flush=True)


def mem_available_gb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2 ** 20
    return float("inf")


def lost(worker, exc=None):
    """One line naming a worker that failed or died, and why; marks it failed."""
    if worker.error is None:
        code = worker.proc.poll() if hasattr(worker, "proc") else None
        worker.error = (f"worker {worker.name!r} died (exit code {code}{', killed: out of memory?' if code == -9 else ''})"
                        if not isinstance(exc, common.WorkerError) else str(exc))
    say(f"lost: {worker.error}")


def start(spec, name, need):
    """A Worker for `spec`, or None (with a line) when the memory available cannot hold `need` GB."""
    have = mem_available_gb()
    if have < need + 1:
        say(f"skipped: worker {name!r} needs ~{need} GB, {have:.1f} GB available")
        return None
    script = "original.py" if spec["kind"] == "original" else "best_vs_best.py"
    return common.Worker(name, script, spec, env=spec["env"])


def build_all(specs, need, concurrency):
    """Starts the workers (`concurrency` building at once; 1 for the large models, and each checks the
    memory left when it starts); returns those that became ready."""
    workers, ready = [], []
    for name, spec in specs:
        w = start(spec, name, need)
        if w is not None:
            workers.append(w)
        if len(workers) >= concurrency or (name, spec) == specs[-1]:
            for w in workers:
                if w.wait_ready():
                    ready.append(w)
                else:
                    lost(w)
                    w.close()
            workers = []
    return ready


def interleave(timed, rounds, steps):
    """{setting name: per-step seconds}: common.interleave's rotation, but a worker that dies is
    named in one line and dropped, and the others go on."""
    times = {t.name: [] for t in timed}
    for r in range(rounds):
        live = [t for t in timed if t.error is None]
        for t in (live[r % len(live):] + live[:r % len(live)]) if live else []:
            if t.error is not None:
                continue
            try:
                times[t.name].extend(t.run(steps))
            except (common.WorkerError, OSError, ValueError) as e:
                lost(t.worker, e)
    return times


def measure(members, rounds, steps, need, concurrency):
    """Builds one worker per process group in `members` ([(name, spec)]), times every setting of
    theirs interleaved; returns ({setting: per-step seconds}, {setting: info or error})."""
    workers = build_all(members, need, concurrency)
    try:
        timed = [common.Timed(w, s["name"]) for w in workers for s in w.spec["settings"]]
        times = interleave(timed, rounds, steps)
    finally:
        common.close_all(workers)
    info = {}
    for name, spec in members:
        w = next((w for w in workers if w.name == name), None)
        for s in spec["settings"]:
            info[s["name"]] = ({"error": w.error} if w and w.error else
                               {"error": f"worker {name!r} did not start or build"} if w is None else
                               {k: v for k, v in w.info.items() if k != "ready"})
    return times, info


def finals_groups(meta, screened, sides, max_live):
    """The finalists (each side's fastest screened setting per kernel library) and the groups they
    are timed in: one group if they fit in `max_live` workers, else one per library plus one of
    each side's best screened setting (unless a library's group already is that)."""
    finalists = {}
    for name, t in screened.items():
        s = meta[name]
        key = (s["side"], s["lib"])
        if t is not None and (key not in finalists or t < screened[finalists[key]]):
            finalists[key] = name
    if len(finalists) <= max_live:
        return [sorted(finalists.values())] if finalists else []
    out = [sorted(f for (_, lib), f in finalists.items() if lib == lb) for lb in LIBS]
    best = sorted(min((n for n in finalists.values() if meta[n]["side"] == side), key=screened.get)
                  for side in sides if any(meta[n]["side"] == side for n in finalists.values()))
    out = [g for g in out if g]
    if best not in out:
        out.append(best)
    return out


def ratio(mode, t_ours, t_other):
    """Training: ours' speed / theirs (t_other / t_ours); sampling: ours' time / theirs."""
    if not t_ours or not t_other:
        return None
    return t_other / t_ours if mode == "train" else t_ours / t_other


def summarize(mode, meta, screened, groups_timed):
    """The table's logic. `meta`: {setting: its dict}; `screened`: {setting: median s of the
    screening}; `groups_timed`: [{setting: median s of the finals (None: failed)}], each a group timed
    side by side. Each side's best: the fastest of its finalists in a group that holds all of them,
    else its fastest screened finalist. A ratio compares two settings timed in the same group: the
    sides' bests, and per kernel library each side's fastest setting under it (in the first group
    holding both). Returns {"best": {side:
    setting}, "vs": {other side: ratio of ours' best to its best}, "per_lib": {lib: {other side:
    ratio}}}."""
    sides = sorted({meta[n]["side"] for g in groups_timed for n in g})
    best = {}
    for side in sides:
        fin = {n for g in groups_timed for n in g if meta[n]["side"] == side}
        holder = next((g for g in groups_timed if fin <= set(g) and any(g[n] for n in fin)), None)
        if holder is not None:
            best[side] = min((n for n in fin if holder[n]), key=holder.get)
        elif any(screened.get(n) for n in fin):
            best[side] = min((n for n in fin if screened.get(n)), key=screened.get)

    def side_by_side(a, b):
        g = next((g for g in groups_timed if g.get(a) and g.get(b)), None)
        return ratio(mode, g[a], g[b]) if g else None

    out = {"best": best, "vs": {}, "per_lib": {}}
    if "ours" not in best:
        return out
    for side in sides:
        if side == "ours" or side not in best:
            continue
        out["vs"][side] = side_by_side(best["ours"], best[side])
        for lib in LIBS:
            for g in groups_timed:
                a = [n for n in g if g[n] and meta[n]["side"] == "ours" and meta[n]["lib"] == lib]
                b = [n for n in g if g[n] and meta[n]["side"] == side and meta[n]["lib"] == lib]
                if a and b:
                    out["per_lib"].setdefault(lib, {})[side] = ratio(mode, min(g[n] for n in a), min(g[n] for n in b))
                    break
    return out


def report(task, phase, name, t, times, info, unit, figure, group=None):
    """Emits one setting's JSON line; returns its table row."""
    first = info.get("first_step_s")
    r = {"bench": "best_vs_best", "task": task, "phase": phase, "group": group, "setting": name, unit: figure(t),
         "n_timed": len(times.get(name, [])), "first_step_s": first.get(name) if isinstance(first, dict) else first,
         **({"error": info["error"]} if "error" in info else {})}
    common.emit(r)
    return [common.fmt(group), name, common.fmt(r[unit], 1 if unit == "images/s" else 0), r["n_timed"],
            common.fmt(r["first_step_s"]), ("error: " + info["error"][:70]) if "error" in info else ""]


def run_task(args, task, mode, config_name, batch):
    sides = ["ours"] + (["original"] if args.original_dir else []) + ["tfp"]
    meta = {s["name"]: s for s in select(settings(mode, sides, args.quick), args.include, args.exclude)}
    if not meta:
        say(f"{task}: --include/--exclude leave no setting")
        return None
    gb = args.worker_gb or GB_PER_WORKER[config_name]
    max_live = max(1, int(args.memory_gb // gb))
    concurrency = 1 if gb > 2 else min(args.concurrency, max_live)
    unit = "images/s" if mode == "train" else "ms"

    def figure(t):
        return None if not t else (batch / t if mode == "train" else 1e3 * t)

    members = [(f"{g[0]['side']} {g[0]['lib']} threads={g[0]['threads']}"
                + (f" xla={g[0]['xla']}" if g[0]["side"] != "ours" else ""),
                worker_spec(g, mode, config_name, batch, args.original_dir)) for g in groups(list(meta.values()))]
    screened, timed_groups = {}, []
    if len(members) <= max_live:  # every worker fits at once: one phase, every setting timed side by side
        say(f"{task}: {len(members)} workers fit in --memory_gb {args.memory_gb}: no screening, all settings timed "
            f"together")
        final_groups = [[s["name"] for _, spec in members for s in spec["settings"]]]
    elif args.by_library:  # each library's workers together; the sides' bests after, if they differ in library
        rows = []
        for k, lib in enumerate(LIBS):
            group = [(name, spec) for name, spec in members if spec["env"]["TF_ENABLE_ONEDNN_OPTS"] == LIBS[lib]]
            times, info = measure(group, args.rounds, args.steps, gb, concurrency)
            timed_groups.append({s["name"]: common.median(times.get(s["name"], [])) for _, spec in group
                                 for s in spec["settings"]})
            rows += [report(task, "final", n, t, times, info[n], unit, figure, k) for n, t in timed_groups[-1].items()]
        screened = {n: t for g in timed_groups for n, t in g.items()}
        final_groups = [g for g in finals_groups(meta, screened, sides, 0)
                        if not any(set(g) <= set(t) for t in timed_groups)]
        members = None
    else:
        # (1) screening: every setting, few steps, a few workers (their settings) at a time
        per_batch = max(1, min(max_live, args.screen_workers))
        rows = []
        for i in range(0, len(members), per_batch):
            times, info = measure(members[i:i + per_batch], args.screen_rounds, args.screen_steps, gb,
                                  concurrency)
            for name, inf in info.items():
                screened[name] = common.median(times.get(name, []))
                rows.append(report(task, "screen", name, screened[name], times, inf, unit, figure))
        common.print_table(f"{task}: screening ({args.screen_rounds} x {args.screen_steps} steps, workers of "
                           f"{per_batch} process(es) at a time)", ["group", "setting", unit, "n", "first s", ""], rows)
        # (2) finals: each side's fastest screened setting per kernel library, rebuilt alone, interleaved
        final_groups = finals_groups(meta, screened, sides, max_live)
        members = None
    rows = rows if args.by_library else []
    for k, names in enumerate(final_groups, start=len(timed_groups)):
        group = members or [(f"final {n}", worker_spec([meta[n]], mode, config_name, batch, args.original_dir))
                            for n in names]
        times, info = measure(group, args.rounds, args.steps, gb, concurrency)
        timed_groups.append({n: common.median(times.get(n, [])) for n in names})
        rows += [report(task, "final", n, timed_groups[-1][n], times, info[n], unit, figure, k) for n in names]
    common.print_table(f"{task}: finals ({args.rounds} x {args.steps} steps, interleaved within each group)",
                       ["group", "setting", unit, "n", "first s", ""], rows)
    summary = summarize(mode, meta, screened, timed_groups)
    goal = GOALS[mode] if (mode == "train" or config_name in ("celeba", "quick")) else None
    rec = {"bench": "best_vs_best", "task": task, "phase": "summary", "batch": batch, **summary,
           "ratio_means": "ours speed / theirs" if mode == "train" else "ours time / theirs",
           "goal_best_vs_original": goal}
    common.emit(rec)
    rows = [[f"best of {side}", name] for side, name in summary["best"].items()]
    rows += [[f"ours best / {side} best", common.fmt(v, 2)] for side, v in summary["vs"].items()]
    rows += [[f"ours / {side}, {lib} only", common.fmt(v, 2)] for lib, d in summary["per_lib"].items()
             for side, v in d.items()]
    common.print_table(f"{task}: best versus best ({rec['ratio_means']}; goal vs original: "
                       f"{'>=' if mode == 'train' else '<='} {goal}x, and per library "
                       f"{'>=' if mode == 'train' else '<='} 1.0x)" if goal else f"{task}: best versus best "
                       f"({rec['ratio_means']})", ["", ""], rows)
    return rec


def checkout_original(git_dir):
    """A checkout of HEAD of a git directory of openai/glow in a temporary folder (removed at exit)."""
    folder = tempfile.mkdtemp(prefix="openai_glow_")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    archive = subprocess.run(["git", "--git-dir", git_dir, "archive", "HEAD"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)
    return folder


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--original_dir", default="",
                   help="a checkout of openai/glow (model.py, tfops.py, optim.py); default: HEAD of the git "
                        "directory $GLOW_ORIGINAL_GIT when set, else the original is not timed")
    p.add_argument("--screen", nargs=3, type=int, default=[1, 2, 4], metavar=("ROUNDS", "STEPS", "WORKERS"),
                   help="screening: interleaved rounds, timed steps per setting per round, worker processes "
                        "timed together")
    p.add_argument("--finals", nargs=2, type=int, default=[5, 3], metavar=("ROUNDS", "STEPS"),
                   help="finals: interleaved rounds, timed steps per setting per round")
    p.add_argument("--concurrency", type=int, default=2, help="workers building at once (small models)")
    p.add_argument("--memory_gb", type=float, default=14.0,
                   help="memory the live workers may use together (a worker: ~1.5 GB bench, 6.5 GB CIFAR-10, "
                        "8 GB CelebA-HQ)")
    p.add_argument("--worker_gb", type=float, default=None,
                   help="memory one worker takes, for --memory_gb (default: 1.5 bench, 6.5 CIFAR-10, 8 CelebA-HQ)")
    p.add_argument("--by_library", action="store_true",
                   help="no screening: the workers of each kernel library timed together (every setting of "
                        "each), then each side's best together if they differ in library (for the large models)")
    p.add_argument("--include", nargs="+", default=None, metavar="PATTERN",
                   help="only the settings whose name matches one of these shell patterns, e.g. '*eigen*'")
    p.add_argument("--exclude", nargs="+", default=None, metavar="PATTERN",
                   help="leave out the settings whose name matches, e.g. 'ours * xla=1 *'")
    p.add_argument("--quick", action="store_true", help="a tiny model, 1 round of 2 steps (for the tests)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:
        return common.worker_main(args.worker, build_worker)
    if min(*args.screen, *args.finals, args.concurrency) < 1:
        p.error(f"--screen, --finals and --concurrency take numbers >= 1, got {args.screen}, {args.finals}, "
                f"{args.concurrency}")
    args.screen_rounds, args.screen_steps, args.screen_workers = args.screen
    args.rounds, args.steps = args.finals
    if args.memory_gb <= 0:
        p.error(f"--memory_gb must be > 0, got {args.memory_gb}")
    if not args.original_dir and os.environ.get("GLOW_ORIGINAL_GIT"):
        args.original_dir = checkout_original(os.environ["GLOW_ORIGINAL_GIT"])
    if args.original_dir:
        import original
        original.check_dir(args.original_dir)
    tasks = QUICK_TASKS if args.quick else {t: TASKS[t] for t in args.tasks}
    if args.quick:
        args.screen_rounds, args.screen_steps, args.rounds, args.steps = 1, 2, 2, 2
    common.emit({"bench": "best_vs_best", "machine": common.machine()})
    for task, (mode, config_name, batch) in tasks.items():
        run_task(args, task, mode, config_name, batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
