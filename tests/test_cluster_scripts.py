"""The cluster scripts run here against stand-ins for what a cluster has (scontrol, srun, getent, hostname, ip,
ssh, nvidia-smi, horovodrun, a driver's /proc file, CUDA's forward-compatibility libcuda), checking the
commands and addresses they produce (docs/cluster.md, docs/elastic.md):

- examples/node_ip.sh: a node's address other nodes reach, never 127.0.1.1;
- examples/slurm_horovodrun.sbatch: the horovodrun command (addresses, optional flags);
- examples/slurm_srun_pmix.sbatch: SRUN_CPUS_PER_TASK, the world check before training;
- examples/discover_hosts.sh: what Horovod's own discovery parser reads from it, as hosts come and go;
- examples/docker_flags.sh: InfiniBand flags only where the devices exist;
- scripts/entrypoint.sh: the image's driver checks (forward compatibility, Hopper on an old driver);
- scripts/world_check.py: the seconds-long check of a launch, with real Horovod;
- every shell script: arrays that may be empty expanded so that bash < 4.4 accepts them under set -u.
"""
import os
import re
import shutil
import subprocess
import sys

import pytest

from horovod_launch import ENV as HOROVOD_ENV
from horovod_launch import HOROVODRUN, needs_horovod

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(REPO, "examples")
SHELL_SCRIPTS = sorted([os.path.join(EXAMPLES, n) for n in os.listdir(EXAMPLES) if n.endswith((".sh", ".sbatch"))]
                       + [os.path.join(REPO, "scripts", n) for n in os.listdir(os.path.join(REPO, "scripts"))
                          if n.endswith(".sh")])

# A two-node Slurm job seen from its first node, node1: Debian's /etc/hosts maps node1 to 127.0.1.1
# there; node2 resolves through DNS; node3 is known to Slurm by address only.
FAKES = {
    "scontrol": """
if [ "$1" = show ] && [ "$2" = hostnames ]; then printf 'node1\\nnode2\\n'; exit 0; fi
if [ "$1" = show ] && [ "$2" = node ]; then
    case "$3" in node3) addr=10.0.0.3 ;; *) addr="$3" ;; esac
    echo "NodeName=$3 Arch=x86_64 CoresPerSocket=8"; echo "   NodeAddr=$addr NodeHostName=$3 Version=23.02.7"; exit 0
fi
exit 1""",
    "getent": """
[ "$1" = ahostsv4 ] || exit 2
case "$2" in
    node1) printf '127.0.1.1       STREAM node1\\n127.0.1.1       DGRAM\\n' ;;
    node2) printf '10.0.0.2        STREAM node2\\n10.0.0.2        DGRAM\\n' ;;
    *) exit 2 ;;
esac""",
    "hostname": """
case "${1:-}" in -s) echo node1 ;; -I) echo "10.0.0.1 172.17.0.1 " ;; *) echo node1.cluster ;; esac""",
    "ip": """
[ "$*" = "-4 -o addr show dev ib0" ] || exit 1
echo "4: ib0    inet 192.168.7.1/24 brd 192.168.7.255 scope global ib0" """,
}


def _fake_bin(tmp_path, fakes):
    """A directory of stand-in executables (bash scripts) to put first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in fakes.items():
        path = bin_dir / name
        path.write_text("#!/usr/bin/env bash\n" + body.strip() + "\n")
        path.chmod(0o755)
    return bin_dir


def _run(cmd, tmp_path, fakes=FAKES, env=None, **kwargs):
    bin_dir = _fake_bin(tmp_path, fakes)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM", "GLOW_"))}
    full_env = {**base, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURMD_NODENAME": "node1", **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=120, **kwargs)


# --- examples/node_ip.sh ---------------------------------------------------------------------------------

def test_node_ip_gives_addresses_the_other_nodes_reach(tmp_path):
    """node1 (this machine) resolves to 127.0.1.1: its own non-loopback address is taken instead; node2
    through DNS; node3 from Slurm's NodeAddr; an address stays itself."""
    result = _run(["bash", os.path.join(EXAMPLES, "node_ip.sh"), "node1", "node2", "node3", "10.9.9.9"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.9.9.9"]
    assert "127." not in result.stdout


def test_node_ip_takes_this_machines_address_on_the_chosen_interface(tmp_path):
    result = _run(["bash", os.path.join(EXAMPLES, "node_ip.sh"), "node1", "node2"], tmp_path, env={"GLOW_IFACE": "ib0"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["192.168.7.1", "10.0.0.2"]


def test_node_ip_names_a_node_without_an_address(tmp_path):
    result = _run(["bash", os.path.join(EXAMPLES, "node_ip.sh"), "node2", "node9"], tmp_path)
    assert result.returncode == 1
    assert "no address other than loopback for node node9" in result.stderr, result.stderr


# --- examples/slurm_horovodrun.sbatch --------------------------------------------------------------------

def _glow_dir(tmp_path, recorder):
    """A stand-in GLOW_DIR: the real examples/, and .venv/bin/horovodrun recording its arguments."""
    glow = tmp_path / "glow"
    (glow / ".venv" / "bin").mkdir(parents=True)
    shutil.copytree(EXAMPLES, glow / "examples")
    horovodrun = glow / ".venv" / "bin" / "horovodrun"
    horovodrun.write_text(f"#!/usr/bin/env bash\nprintf '%s\\n' \"$@\" > {recorder}\n")
    horovodrun.chmod(0o755)
    return glow


SLURM_JOB = {"SLURM_JOB_NODELIST": "node[1-2]", "SLURM_NTASKS": "4", "SLURM_NTASKS_PER_NODE": "2",
             "SLURM_JOB_ID": "77", "GLOW_DATA": "/shared/data"}


@pytest.mark.parametrize("iface, hosts, extra", [
    (None, "10.0.0.1:2,10.0.0.2:2", []),
    ("ib0", "192.168.7.1:2,10.0.0.2:2", ["--network-interface", "ib0"]),
])
def test_slurm_horovodrun_runs_horovodrun_on_the_nodes_addresses(tmp_path, iface, hosts, extra):
    """The batch script on node1, whose name resolves to 127.0.1.1 there: horovodrun gets every node's
    reachable address with --ntasks-per-node slots, and --network-interface only when GLOW_IFACE is set."""
    recorder = tmp_path / "horovodrun.args"
    glow = _glow_dir(tmp_path, recorder)
    env = {**SLURM_JOB, "GLOW_DIR": str(glow), **({"GLOW_IFACE": iface} if iface else {})}
    result = _run(["bash", os.path.join(EXAMPLES, "slurm_horovodrun.sbatch")], tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    args = recorder.read_text().splitlines()
    expected = ["-np", "4", "-H", hosts, "--gloo", *extra, ".venv/bin/python", "train.py"]
    assert args[:len(expected)] == expected, args
    assert args[args.index("--logdir") + 1] == f"{glow}/runs/cifar10-77"
    assert args[args.index("--data_dir") + 1] == "/shared/data/cifar10"


def test_slurm_horovodrun_stops_on_a_node_without_an_address(tmp_path):
    recorder = tmp_path / "horovodrun.args"
    glow = _glow_dir(tmp_path, recorder)
    fakes = {**FAKES, "scontrol": FAKES["scontrol"].replace("printf 'node1\\nnode2\\n'", "printf 'node1\\nnode9\\n'")}
    result = _run(["bash", os.path.join(EXAMPLES, "slurm_horovodrun.sbatch")], tmp_path, fakes=fakes,
                  env={**SLURM_JOB, "GLOW_DIR": str(glow)})
    assert result.returncode != 0 and not recorder.exists()
    assert "node9" in result.stderr, result.stderr


# --- examples/slurm_srun_pmix.sbatch ---------------------------------------------------------------------

SRUN_RECORDER = """
echo "SRUN_CPUS_PER_TASK=${SRUN_CPUS_PER_TASK:-unset} $*" >> "$SRUN_LOG"
case "$*" in *world_check.py*) exit "${WORLD_CHECK_EXIT:-0}" ;; esac"""


@pytest.mark.parametrize("sif", [False, True])
def test_srun_pmix_passes_cpus_per_task_and_checks_the_world_before_training(tmp_path, sif):
    """Slurm >= 22.05 does not give srun the job's --cpus-per-task: the script exports
    SRUN_CPUS_PER_TASK for both steps; the first step is the world check, then train.py."""
    log = tmp_path / "srun.log"
    glow = tmp_path / "glow"
    glow.mkdir()
    env = {**SLURM_JOB, "SLURM_CPUS_PER_TASK": "6", "SRUN_LOG": str(log), "GLOW_DIR": str(glow)}
    if sif:
        env.update(GLOW_SIF="/shared/glow-tf.sif", GLOW_LOGS="/shared/logs")
    result = _run(["bash", os.path.join(EXAMPLES, "slurm_srun_pmix.sbatch")], tmp_path,
                  fakes={**FAKES, "srun": SRUN_RECORDER}, env=env)
    assert result.returncode == 0, result.stderr
    steps = log.read_text().splitlines()
    assert len(steps) == 2, steps
    run = ("apptainer exec --nv --bind /shared/data:/data:ro,/shared/logs:/logs --pwd /opt/glow-tf "
           "/shared/glow-tf.sif bash scripts/entrypoint.sh python" if sif else ".venv/bin/python")
    assert steps[0] == f"SRUN_CPUS_PER_TASK=6 --mpi=pmix --time=5 {run} scripts/world_check.py"
    assert steps[1].startswith(f"SRUN_CPUS_PER_TASK=6 --mpi=pmix {run} train.py --problem cifar10"), steps[1]


def test_srun_pmix_does_not_train_when_the_world_check_fails(tmp_path):
    log = tmp_path / "srun.log"
    glow = tmp_path / "glow"
    glow.mkdir()
    env = {**SLURM_JOB, "SRUN_LOG": str(log), "GLOW_DIR": str(glow), "WORLD_CHECK_EXIT": "1"}
    result = _run(["bash", os.path.join(EXAMPLES, "slurm_srun_pmix.sbatch")], tmp_path,
                  fakes={**FAKES, "srun": SRUN_RECORDER}, env=env)
    assert result.returncode == 1
    steps = log.read_text().splitlines()
    assert len(steps) == 1 and "world_check.py" in steps[0], steps
    assert steps[0].startswith("SRUN_CPUS_PER_TASK=unset "), steps  # no --cpus-per-task: nothing forced


# --- examples/discover_hosts.sh ------------------------------------------------------------------------

SSH = """
port=""; host=""
while [ "$#" -gt 0 ]; do
    case "$1" in -p) port="$2"; shift 2 ;; -o) shift 2 ;; *) host="$1"; break ;; esac
done
echo "$host:$port" >> "$SSH_LOG"
case " ${HOSTS_DOWN:-} " in *" $host "*) exit 255 ;; esac
exit 0"""


def _discovered(tmp_path, monkeypatch, args, env):
    """What Horovod's elastic driver reads from the script (its own parser, HostDiscoveryScript)."""
    discovery = pytest.importorskip("horovod.runner.elastic.discovery")
    bin_dir = _fake_bin(tmp_path, {**FAKES, "ssh": SSH})
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("SLURMD_NODENAME", "node1")
    monkeypatch.setenv("SSH_LOG", str(tmp_path / "ssh.log"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    script = "bash " + " ".join([os.path.join(EXAMPLES, "discover_hosts.sh"), *args])
    return discovery.HostDiscoveryScript(script, slots=1).find_available_hosts_and_slots()


def test_discovery_from_a_hosts_file_lists_addresses_whose_sshd_answers(tmp_path, monkeypatch):
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("# the workers that are up\n10.0.0.1:2\nnode2:4   # by name\n10.0.0.5:1\nnode7\n")
    env = {"GLOW_SSH_PORT": "12345", "HOSTS_DOWN": "10.0.0.5"}
    assert _discovered(tmp_path, monkeypatch, ["file", str(hosts)], env) == {"10.0.0.1": 2, "10.0.0.2": 4}
    assert sorted((tmp_path / "ssh.log").read_text().split()) == ["10.0.0.1:12345", "10.0.0.2:12345",
                                                                   "10.0.0.5:12345"]
    # the file is rewritten while the job runs: a host leaves
    hosts.write_text("10.0.0.1:2\n")
    assert _discovered(tmp_path, monkeypatch, ["file", str(hosts)], env) == {"10.0.0.1": 2}


def test_discovery_of_a_slurm_job_lists_the_nodes_that_answer_by_address(tmp_path, monkeypatch):
    env = {"SLURM_JOB_NODELIST": "node[1-2]", "SLURM_NTASKS_PER_NODE": "8"}
    assert _discovered(tmp_path, monkeypatch, ["slurm"], env) == {"10.0.0.1": 8, "10.0.0.2": 8}
    assert _discovered(tmp_path, monkeypatch, ["slurm"], {**env, "HOSTS_DOWN": "10.0.0.2"}) == {"10.0.0.1": 8}


# --- examples/docker_flags.sh ----------------------------------------------------------------------------

def test_docker_flags_add_infiniband_only_where_its_devices_exist(tmp_path):
    script = os.path.join(EXAMPLES, "docker_flags.sh")
    base = "--gpus all --ipc host --ulimit memlock=-1"
    absent = _run(["bash", script], tmp_path, env={"GLOW_INFINIBAND_DIR": str(tmp_path / "infiniband")})
    assert absent.returncode == 0 and absent.stdout.strip() == base
    (tmp_path / "infiniband").mkdir()
    present = _run(["bash", script], tmp_path, env={"GLOW_INFINIBAND_DIR": str(tmp_path / "infiniband")})
    assert present.stdout.strip() == f"{base} --device={tmp_path / 'infiniband'} --cap-add=IPC_LOCK"


# --- scripts/entrypoint.sh -------------------------------------------------------------------------------

def _nvidia(tmp_path, driver, gpus, cu_init):
    """A driver's /proc version file, nvidia-smi listing `gpus` [(name, compute capability)], and the
    forward-compatibility libcuda of driver 555.42.06 whose cuInit returns `cu_init`."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the stand-in libcuda")
    compat = tmp_path / "compat"
    compat.mkdir()
    (tmp_path / "cuinit.c").write_text(f"int cuInit(unsigned int flags) {{ return {cu_init}; }}\n")
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(compat / "libcuda.so.555.42.06"), str(tmp_path / "cuinit.c")],
                   check=True)
    (compat / "libcuda.so.1").symlink_to("libcuda.so.555.42.06")
    version = tmp_path / "version"
    version.write_text(f"NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  {driver}  Release Build  "
                       f"(dvs-builder@U16-I3-B03-4-3)  Thu Oct 10 2024\nGCC version:  gcc version 12.2.0\n")
    listing = "\\n".join(f"{name}, {cap}" for name, cap in gpus)
    smi = f"""
case "$*" in
    *driver_version*) echo {driver} ;;
    *name,compute_cap*) printf '{listing}\\n' ;;
esac"""
    env = {"GLOW_CUDA_COMPAT_DIR": str(compat), "GLOW_DRIVER_VERSION_FILE": str(version),
           "GLOW_PROBE_PYTHON": sys.executable, "LD_LIBRARY_PATH": "/usr/local/nvidia/lib64"}
    return {**FAKES, "nvidia-smi": smi}, env, compat


ENTRYPOINT_CASES = {
    # (driver, GPUs, cuInit of the compat library) -> (exit code, LD_LIBRARY_PATH gets compat, stderr has)
    "a driver as new as CUDA 12.5's": ("560.35.03", [("NVIDIA H100 80GB HBM3", "9.0")] * 2, 0, 0, False, None),
    "H100 on 535, forward compatibility works": ("535.216.01", [("NVIDIA H100 80GB HBM3", "9.0")] * 8, 0, 0, True,
                                                 "NVIDIA driver 535.216.01 is older than CUDA 12.5's 555.42.06: "
                                                 "using CUDA's forward-compatibility libraries"),
    "H100 on 535, forward compatibility refused": ("535.216.01", [("NVIDIA H100 80GB HBM3", "9.0")] * 8, 804, 1, False,
                                                   "cannot run TensorFlow 2.18.1 on 8x NVIDIA H100 80GB HBM3 (compute "
                                                   "capability 9.0) with NVIDIA driver 535.216.01"),
    "A100 on 535, forward compatibility refused": ("535.216.01", [("NVIDIA A100-SXM4-80GB", "8.0")], 804, 0, False,
                                                   "warning: NVIDIA driver 535.216.01 is older than CUDA 12.5's"),
    "H100 on 550: PTX compiles, no compatibility": ("550.90.07", [("NVIDIA H100 PCIe", "9.0")], 804, 0, False,
                                                    "warning: NVIDIA driver 550.90.07"),
}


@pytest.mark.parametrize("case", ENTRYPOINT_CASES)
def test_entrypoint_makes_an_old_driver_work_or_says_why_it_cannot(tmp_path, case):
    driver, gpus, cu_init, code, uses_compat, says = ENTRYPOINT_CASES[case]
    fakes, env, compat = _nvidia(tmp_path, driver, gpus, cu_init)
    command = ["bash", os.path.join(REPO, "scripts", "entrypoint.sh"), "bash", "-c", 'echo "LD=$LD_LIBRARY_PATH"']
    result = _run(command, tmp_path, fakes=fakes, env=env)
    assert result.returncode == code, result.stderr
    if code:
        assert result.stdout == "" and "Upgrade the host's NVIDIA driver to R555 or newer" in result.stderr
        forced = _run(command, tmp_path, fakes=fakes, env={**env, "GLOW_SKIP_DRIVER_CHECK": "1"})
        assert forced.returncode == 0 and forced.stdout == "LD=/usr/local/nvidia/lib64\n"
        return
    expected = f"{compat}:/usr/local/nvidia/lib64" if uses_compat else "/usr/local/nvidia/lib64"
    assert result.stdout == f"LD={expected}\n"  # stdout is the command's alone
    if says:
        assert says in result.stderr, result.stderr
    else:
        assert result.stderr == ""


def test_entrypoint_without_a_driver_runs_the_command_unchanged(tmp_path):
    env = {"GLOW_DRIVER_VERSION_FILE": str(tmp_path / "none"), "GLOW_CUDA_COMPAT_DIR": str(tmp_path / "none")}
    result = _run(["bash", os.path.join(REPO, "scripts", "entrypoint.sh"), "echo", "a b"], tmp_path, env=env)
    assert (result.returncode, result.stdout, result.stderr) == (0, "a b\n", "")


# --- bash < 4.4 ----------------------------------------------------------------------------------------

def test_arrays_that_may_be_empty_are_expanded_for_old_bash():
    """bash before 4.4 calls "${a[@]}" of an empty array an unbound variable under `set -u`; an array
    that starts empty (`a=()`) is expanded as ${a[@]+"${a[@]}"} everywhere."""
    offenders = []
    for path in SHELL_SCRIPTS:
        text = open(path).read()
        for name in sorted(set(re.findall(r"\b(\w+)=\(\)", text))):
            bare = text.replace(f'${{{name}[@]+"${{{name}[@]}}"}}', "")
            if f'"${{{name}[@]}}"' in bare:
                offenders.append(f"{os.path.relpath(path, REPO)}: {name}")
    assert not offenders, offenders


# --- scripts/world_check.py ------------------------------------------------------------------------------

WORLD_CHECK = os.path.join(REPO, "scripts", "world_check.py")


@needs_horovod
def test_world_check_stops_tasks_that_horovod_did_not_connect(tmp_path):
    """What plain `srun` without a PMI plugin (or an Apptainer PMIx that cannot talk to Slurm's) looks
    like from a task: Slurm says 2 tasks, Horovod sees 1."""
    env = {**HOROVOD_ENV, "SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2", "SLURM_NTASKS": "2"}
    result = subprocess.run([sys.executable, WORLD_CHECK], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 1
    assert re.search(r"world_check: on \S+: Slurm srun started 2 workers \(SLURM_PROCID=1, SLURM_STEP_NUM_TASKS=2\) "
                     r"but Horovod sees 1", result.stderr), result.stderr
    assert "Traceback" not in result.stderr


@needs_horovod
@pytest.mark.slow
def test_world_check_passes_for_workers_horovod_connected(tmp_path):
    result = subprocess.run([HOROVODRUN, "-np", "2", "-H", "localhost:2", "--gloo", sys.executable, WORLD_CHECK],
                            capture_output=True, text=True, env=HOROVOD_ENV, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    lines = sorted(re.findall(r"world_check: rank (\d) of (\d) on \S+ \(CPU, local rank (\d)\): ok", result.stdout))
    assert lines == [("0", "2", "0"), ("1", "2", "1")], result.stdout
