"""Real SYN retransmissions captured by tcpdump, in a network namespace this test creates.

Inside the namespace (loopback only), nftables drops the first two SYNs towards 127.0.0.1:53
(``quota until 130 bytes``: a 60-byte SYN is dropped while the running total stays below 130, so
SYNs 1 and 2 are dropped and SYN 3 passes). ``dig +tcp`` then connects after the kernel's SYN
retries (RTO 1 s, then 2 s), sends its query to a tiny DNS-over-TCP responder, and tcpdump records
it. The loader's ``syn_retransmits`` must equal tshark's ``tcp.analysis.retransmission`` on SYNs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from conftest import require_root, require_tool
from test_capture import tshark_rows

import kit

RESPONDER = r"""
import socket, struct
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 53)); s.listen(4); print("ready", flush=True)
c, _ = s.accept()
n = struct.unpack(">H", c.recv(2))[0]; q = b""
while len(q) < n: q += c.recv(n - len(q))
end = q.index(b"\0", 12) + 5          # end of the question
r = q[:2] + b"\x81\x80" + b"\x00\x01\x00\x01\x00\x00\x00\x00" + q[12:end]
r += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x1e\x00\x04\x7f\x00\x00\x09"
c.sendall(struct.pack(">H", len(r)) + r); c.recv(10); c.close()
"""
NFT = """
table inet dnskit_test {
  chain input {
    type filter hook input priority 0; policy accept;
    tcp dport 53 tcp flags & (syn | ack) == syn quota until 130 bytes drop
  }
}
"""


@pytest.mark.lab
def test_real_syn_retransmissions(tmp_path: Path, tshark: str) -> None:
    require_root()
    ip = require_tool("ip", "iproute2")
    nft = require_tool("nft", "nftables")
    tcpdump = require_tool("tcpdump")
    dig = require_tool("dig", "dnsutils")
    ns = f"dnskit-cap-{os.getpid()}"
    pcap = tmp_path / "syn.pcap"
    procs: list[subprocess.Popen[bytes]] = []

    def nsexec(*argv: str) -> list[str]:
        return [ip, "netns", "exec", ns, *argv]

    subprocess.run([ip, "netns", "add", ns], check=True)
    try:
        subprocess.run(nsexec(ip, "link", "set", "lo", "up"), check=True)
        subprocess.run(nsexec(nft, "-f", "-"), input=NFT.encode(), check=True)
        dump = subprocess.Popen(
            nsexec(
                tcpdump, "-i", "lo", "-n", "-U", "--immediate-mode", "-w", str(pcap), "port", "53"
            ),
            stderr=subprocess.PIPE,
        )
        procs.append(dump)
        assert dump.stderr is not None
        while b"listening on" not in dump.stderr.readline():
            assert dump.poll() is None, "tcpdump did not start"
        srv = subprocess.Popen(nsexec(sys.executable, "-c", RESPONDER), stdout=subprocess.PIPE)
        procs.append(srv)
        assert srv.stdout is not None and srv.stdout.readline().strip() == b"ready"
        out = subprocess.run(
            nsexec(dig, "+tcp", "+tries=1", "+time=15", "@127.0.0.1", "api.example.com", "A"),
            capture_output=True, timeout=60, check=True,
        ).stdout.decode()  # fmt: skip
        assert "127.0.0.9" in out
        srv.wait(timeout=10)
        time.sleep(0.5)  # let tcpdump write the FIN/ACK exchange
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=10)
        subprocess.run([ip, "netns", "del", ns], check=False)

    cap = kit.read_capture(pcap, cache=False)
    ref = tshark_rows(
        tshark,
        pcap,
        ["tcp.stream", "tcp.analysis.retransmission"],
        flt="tcp.flags.syn == 1 && tcp.flags.ack == 0",
    )
    assert len(ref) == 3  # 2 dropped by nftables (seen by tcpdump before the input hook) + 1 passed
    tshark_retx = sum(1 for r in ref if r["tcp.analysis.retransmission"])
    row = cap.tcp.row(0, named=True)
    assert cap.tcp.height == 1
    assert row["syn_retransmits"] == tshark_retx == 2
    assert row["established"] and row["handshake_s"] > 1.0  # at least one kernel SYN RTO (1 s)
    d = cap.dns.row(0, named=True)
    assert (d["qname"], d["qtype"], d["transport"], d["tcp_stream"], d["answered"]) == (
        "api.example.com",
        "A",
        "tcp",
        0,
        True,
    )
    assert cap.packets.filter(pl.col("is_retransmission"))["tcp_flags"].to_list() == [0x02, 0x02]
