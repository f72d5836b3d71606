#!/bin/bash
# Regenerates two-upstreams.pcap: a real unbound cache (127.0.0.10) forwarding to two real NSD
# servers (127.0.0.2, 127.0.0.3, same zone), asked by two dig clients (127.0.0.1, 127.0.0.5),
# captured with tcpdump on the loopback of a network namespace made for the run (nothing leaves
# it). Needs root, unbound, nsd, dig, tcpdump. Usage: make_two_upstreams.sh [out.pcap]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/two-upstreams.pcap}
ns=dnskit-twoup-$$
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
# (background jobs call ip netns exec directly: $! must be the daemon itself, not a subshell)
run() { ip netns exec "$ns" "$@"; }

{
    echo '$ORIGIN example.'
    echo '$TTL 300'
    echo '@ IN SOA ns.example. admin.example. 1 3600 600 86400 300'
    echo '@ IN NS ns.example.'
    echo 'ns IN A 127.0.0.2'
    for i in $(seq 1 40); do echo "h$i IN A 192.0.2.$i"; done
} >"$work/example.zone"
for ip in 127.0.0.2 127.0.0.3; do
    d="$work/nsd-$ip"
    mkdir -p "$d"
    cat >"$d/nsd.conf" <<CONF
server:
    ip-address: $ip
    port: 53
    do-ip6: no
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "$work"
    database: ""
    zonelistfile: "$d/zone.list"
    xfrdfile: "$d/xfrd.state"
    xfrdir: "$d"
    pidfile: "$d/nsd.pid"
    logfile: "$d/nsd.log"
remote-control:
    control-enable: no
zone:
    name: example.
    zonefile: example.zone
CONF
    ip netns exec "$ns" nsd -d -c "$d/nsd.conf" &
    pids+=($!)
done
sed "s|@WORK@|$work|" "$here/two-upstreams-unbound.conf" >"$work/unbound.conf"
ip netns exec "$ns" unbound -d -c "$work/unbound.conf" &
pids+=($!)
sleep 1
ip netns exec "$ns" tcpdump -i lo -U -n -w "$work/cap.pcap" udp port 53 or tcp port 53 2>/dev/null &
tcpdump_pid=$!
pids+=($tcpdump_pid)
sleep 1
# 30 distinct names (misses, forwarded), then 10 of them again (cache hits), from two clients
for i in $(seq 1 30); do
    src=127.0.0.$((i % 2 == 0 ? 1 : 5))
    run dig +tries=1 +time=2 +short -b "$src" @127.0.0.10 "h$i.example" A >/dev/null
done
for i in $(seq 1 10); do
    run dig +tries=1 +time=2 +short -b 127.0.0.1 @127.0.0.10 "h$i.example" A >/dev/null
done
sleep 1
kill "$tcpdump_pid"
wait "$tcpdump_pid" 2>/dev/null || true
cp "$work/cap.pcap" "$out"
echo "wrote $out"
