#!/bin/sh
# Regenerate the real node evidence samples in real/ (root; Debian iproute2, ethtool,
# conntrack). Everything runs in a network namespace made here and deleted at the end: the
# counters are that namespace's, not the host's.
#   nstat-udp-rcvbuf-{before,after}.txt  nstat -asz around 2000 datagrams sent to a UDP socket
#                                       with a 2 KiB receive buffer that is never read
#                                       (UdpRcvbufErrors and UdpInErrors grow)
#   proc-net-snmp.txt, proc-net-netstat.txt  cat /proc/net/{snmp,netstat} after that
#   conntrack-S-{before,after}.txt      conntrack -S around 50 connections through conntrack
#   ip-s-s-link.txt                     ip -s -s link (loopback and a veth pair)
#   ethtool-S-veth0.txt                 ethtool -S veth0
set -eu
NS=dknode$$
cd "$(dirname "$0")/real"
ip netns add "$NS"
trap 'ip netns del "$NS"' EXIT
ip -n "$NS" link set lo up
ip -n "$NS" link add veth0 type veth peer name veth1
ip -n "$NS" addr add 10.99.0.1/24 dev veth0
ip -n "$NS" addr add 10.99.0.2/24 dev veth1
ip -n "$NS" link set veth0 up
ip -n "$NS" link set veth1 up
ip netns exec "$NS" nft -f - <<'NFT'
table inet t { chain c { type filter hook output priority 0; ct state new counter accept; }; }
NFT
ip netns exec "$NS" nstat -asz > nstat-udp-rcvbuf-before.txt
ip netns exec "$NS" conntrack -S > conntrack-S-before.txt
ip netns exec "$NS" python3 - <<'PY'
import socket
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)  # the kernel doubles it
r.bind(("127.0.0.1", 5353))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(2000):
    s.sendto(b"x" * 100, ("127.0.0.1", 5353))
for i in range(50):
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.sendto(b"y", ("10.99.0.2", 9000 + i))
    c.close()
PY
ip netns exec "$NS" nstat -asz > nstat-udp-rcvbuf-after.txt
ip netns exec "$NS" conntrack -S > conntrack-S-after.txt
ip netns exec "$NS" cat /proc/net/snmp > proc-net-snmp.txt
ip netns exec "$NS" cat /proc/net/netstat > proc-net-netstat.txt
ip netns exec "$NS" ip -s -s link > ip-s-s-link.txt
ip netns exec "$NS" ethtool -S veth0 > ethtool-S-veth0.txt
