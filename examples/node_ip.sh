#!/usr/bin/env bash
# The IPv4 address at which the other machines reach each given node, one a line, in the order given:
# what horovodrun's -H and an elastic discovery script must name (docs/cluster.md#several-machines).
#
#   examples/node_ip.sh NODE...        e.g. examples/node_ip.sh $(scontrol show hostnames "$SLURM_JOB_NODELIST")
#
# For each node, the first that gives an address other than loopback (127.x):
#   1. an IPv4 address given as the node itself, or Slurm's NodeAddr for it (`scontrol show node`);
#   2. the IPv4 addresses its name resolves to (`getent ahostsv4`);
#   3. for this machine's own name (SLURMD_NODENAME, `hostname -s` or `hostname`), its own address: on
#      GLOW_IFACE when set (`ip -4 addr show dev`), else the first that `hostname -I` lists.
# Step 3 is for the machine that runs the batch script: Debian and Ubuntu map a machine's own name to
# 127.0.1.1 in its /etc/hosts, which the other machines cannot reach. A node left without an address
# stops the script with a line naming it.
set -euo pipefail

is_ipv4() { [[ $1 =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; }
is_loopback() { [[ $1 == 127.* ]]; }

slurm_addr() {  # Slurm's NodeAddr of $1, when scontrol knows the node
    command -v scontrol >/dev/null || return 0
    scontrol show node "$1" 2>/dev/null | tr ' ' '\n' | sed -n 's/^NodeAddr=//p' | head -n 1
}

own_name() {
    [ "$1" = "${SLURMD_NODENAME:-}" ] || [ "$1" = "$(hostname -s 2>/dev/null)" ] || [ "$1" = "$(hostname 2>/dev/null)" ]
}

own_addresses() {  # this machine's IPv4 addresses, the one on GLOW_IFACE only when it is set
    if [ -n "${GLOW_IFACE:-}" ]; then
        ip -4 -o addr show dev "$GLOW_IFACE" | awk '{ split($4, a, "/"); print a[1] }'
    else
        hostname -I | tr ' ' '\n'
    fi
}

address_of() {
    local node="$1" addr name
    local -a candidates=() names=("$node")
    if is_ipv4 "$node"; then candidates+=("$node"); fi
    addr="$(slurm_addr "$node")"
    if [ -n "$addr" ]; then
        if is_ipv4 "$addr"; then candidates+=("$addr"); else names=("$addr" "$node"); fi
    fi
    for name in "${names[@]}"; do
        while read -r addr _; do
            if [ -n "$addr" ]; then candidates+=("$addr"); fi
        done < <(getent ahostsv4 "$name" 2>/dev/null || true)
    done
    if own_name "$node"; then
        while read -r addr; do
            if [ -n "$addr" ]; then candidates+=("$addr"); fi
        done < <(own_addresses)
    fi
    for addr in ${candidates[@]+"${candidates[@]}"}; do
        if is_ipv4 "$addr" && ! is_loopback "$addr"; then
            echo "$addr"
            return 0
        fi
    done
    echo "node_ip.sh: no address other than loopback for node $node (its name resolves to:" \
        "${candidates[*]:-nothing}); set GLOW_IFACE to the network interface the nodes share" >&2
    return 1
}

[ "$#" -gt 0 ] || { echo "usage: $0 NODE..." >&2; exit 2; }
for node in "$@"; do
    address_of "$node"
done
