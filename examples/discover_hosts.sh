#!/usr/bin/env bash
# Host discovery for an elastic horovodrun (docs/elastic.md): prints `ADDRESS:SLOTS` for every host that
# is usable now, one a line, and exits 0 (no line at all is valid: no host is ready yet).
#
#   examples/discover_hosts.sh file HOSTS_FILE   the hosts listed in a file, one `HOST:SLOTS` a line (# comments);
#                                                your orchestration (or you) rewrites it while the job runs
#   examples/discover_hosts.sh slurm             the nodes of this Slurm job, SLURM_NTASKS_PER_NODE slots each
#
# A host is listed only while its sshd answers (horovodrun starts workers over ssh): on GLOW_SSH_PORT
# (default 22; the glow-tf image's sshd listens on 12345), within 3 seconds, without a password. Hosts are
# printed as IPv4 addresses (examples/node_ip.sh), never as names: a name may resolve to 127.0.1.1 on
# the host itself. horovodrun runs this about once a second; the hosts are checked in parallel.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
port="${GLOW_SSH_PORT:-22}"

answers() {  # $1 answers ssh on $port
    ssh -p "$port" -o BatchMode=yes -o ConnectTimeout=3 -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "$1" true </dev/null >/dev/null 2>&1
}

print_if_up() {  # ADDRESS SLOTS
    if answers "$1"; then echo "$1:$2"; fi
}

case "${1:-}" in
    file)
        hosts_file="${2:?give the hosts file: discover_hosts.sh file HOSTS_FILE}"
        [ -r "$hosts_file" ] || { echo "discover_hosts.sh: cannot read $hosts_file" >&2; exit 1; }
        while IFS= read -r line || [ -n "$line" ]; do
            line="${line%%#*}"
            line="${line//[[:space:]]/}"
            [ -n "$line" ] || continue
            if ! [[ $line =~ ^([^:]+):([1-9][0-9]*)$ ]]; then
                echo "discover_hosts.sh: $hosts_file: '$line' is not HOST:SLOTS (e.g. 10.0.0.2:8); skipped" >&2
                continue
            fi
            slots="${BASH_REMATCH[2]}"
            if address="$("$here/node_ip.sh" "${BASH_REMATCH[1]}")"; then
                print_if_up "$address" "$slots" &
            fi
        done < "$hosts_file"
        ;;
    slurm)
        : "${SLURM_JOB_NODELIST:?run inside a Slurm job (SLURM_JOB_NODELIST is not set)}"
        slots="${SLURM_NTASKS_PER_NODE:?submit with --ntasks-per-node (one task per GPU)}"
        while read -r node; do
            if address="$("$here/node_ip.sh" "$node")"; then
                print_if_up "$address" "$slots" &
            fi
        done < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
        ;;
    *)
        echo "usage: $0 file HOSTS_FILE | slurm (see the comments at the top)" >&2
        exit 2
        ;;
esac
wait
