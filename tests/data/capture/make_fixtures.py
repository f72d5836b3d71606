"""Write the tiny hand-made captures in this folder (deterministic; run from the repo root).

    .venv/bin/python tests/data/capture/make_fixtures.py

Every packet has valid IPv4/UDP/TCP checksums. The expected values the tests use are derived in
comments there from the timeline below, not from the loader's output.

syn_retransmit.pcap (Ethernet, µs timestamps), NodeLocal DNSCache in miniature:
  t=0.000000  pod 10.244.1.5:40001 -> cache 169.254.20.10:53  UDP A api.example.com  id 0x1111
  t=0.000500  cache 10.0.0.5:50001 -> 169.254.169.253:53 TCP SYN (stream 0), ISN 1000
  t=0.100000  pod 10.244.1.7:40003 -> cache  UDP A lost.example.org id 0x4444 (never answered)
  t=0.200000  pod 10.244.1.6:40002 -> cache  UDP AAAA fast.example.com id 0x3333
  t=0.200150  cache -> pod  answer (cache hit, 150 µs)
  t=0.500000  pod 10.244.1.5:40004 -> cache  UDP A other.example.net id 0x5555
  t=0.500500  cache 10.0.0.5:50002 -> upstream TCP SYN (stream 1), SYN/ACK at 0.500800, ACK,
              query id 0x6666 at 0.501000, answer at 0.503000, FIN exchange
  t=0.503500  cache -> pod answer other.example.net (latency 3.5 ms)
  t=1.000500  SYN of stream 0 retransmitted (same ISN), again at t=3.000500
  t=3.001000  SYN/ACK, ACK; query id 0x2222 (API.example.com, 0x20 case) at 3.001200;
              answer at 3.003000; FIN/ACK both ways, last ACK
  t=3.003500  cache -> pod answer api.example.com (latency 3.0035 s)
  t=3.500000  pod 10.244.1.8:40005 -> cache UDP A late.example.com id 0x7777 (capture ends)
weird_qnames.pcap (raw IPv4, DLT 101): one query/response whose name has the labels
  a|b, t<TAB>ab, n<LF>l, x<0x1f>y, <0xff 0xfe>, q"<s>SPACE, d.ot, \\bs, UpPer, com
pipelined_qdcount.pcap: one TCP segment (no handshake) carrying three length-prefixed queries with
  QDCOUNT 2 (a.example, b.example), 0, and 1 (c.example).
Bad inputs: empty.pcap (0 bytes), not_a_capture.pcap (text), header_only.pcap (valid header, no
packet), truncated_tail.pcap (syn_retransmit.pcap cut 10 bytes into its last record),
syn_retransmit.pcap.gz (gzip of syn_retransmit.pcap), unknown_linktype.pcap (DLT 147 USER0).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent


def csum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f">{len(b) // 2}H", b))
    while s >> 16:
        s = (s >> 16) + (s & 0xFFFF)
    return (~s) & 0xFFFF


def ip4(a: str) -> bytes:
    return bytes(int(x) for x in a.split("."))


def name(labels: list[bytes]) -> bytes:
    return b"".join(bytes([len(lab)]) + lab for lab in labels) + b"\0"


def dns(id_: int, flags: int, labels: list[bytes], qtype: int, answers: list[bytes] = ()) -> bytes:
    out = struct.pack(">HHHHHH", id_, flags, 1, len(answers), 0, 0)
    out += name(labels) + struct.pack(">HH", qtype, 1)
    for rdata in answers:
        rtype = 1 if len(rdata) == 4 else 28
        out += b"\xc0\x0c" + struct.pack(">HHIH", rtype, 1, 30, len(rdata)) + rdata
    return out


def ipv4(src: str, dst: str, proto: int, payload: bytes, ident: int) -> bytes:
    hdr = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, 64, proto, 0,
                      ip4(src), ip4(dst))  # fmt: skip
    return hdr[:10] + struct.pack(">H", csum(hdr)) + hdr[12:] + payload


def udp(src: str, sp: int, dst: str, dp: int, payload: bytes, ident: int) -> bytes:
    seg = struct.pack(">HHHH", sp, dp, 8 + len(payload), 0) + payload
    pseudo = ip4(src) + ip4(dst) + struct.pack(">BBH", 0, 17, len(seg))
    c = csum(pseudo + seg) or 0xFFFF
    return ipv4(src, dst, 17, seg[:6] + struct.pack(">H", c) + seg[8:], ident)


def tcp(src: str, sp: int, dst: str, dp: int, seq: int, ack: int, flags: int, payload: bytes,
        ident: int) -> bytes:  # fmt: skip
    opts = b"\x02\x04\x05\xb4\x01\x01\x04\x02" if flags & 0x02 else b""
    off = (20 + len(opts)) // 4
    hdr = struct.pack(">HHIIBBHHH", sp, dp, seq, ack, off << 4, flags, 64240, 0, 0) + opts
    seg = hdr + payload
    pseudo = ip4(src) + ip4(dst) + struct.pack(">BBH", 0, 6, len(seg))
    c = csum(pseudo + seg)
    return ipv4(src, dst, 6, seg[:16] + struct.pack(">H", c) + seg[18:], ident)


def eth(ip: bytes) -> bytes:
    return b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + ip


def pcap(records: list[tuple[float, bytes]], linktype: int = 1) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)]
    base = 1_700_000_000
    for t, pkt in sorted(records, key=lambda r: r[0]):
        us = round(t * 1e6)
        out.append(struct.pack("<IIII", base + us // 1_000_000, us % 1_000_000, len(pkt), len(pkt)))
        out.append(pkt)
    return b"".join(out)


POD5, POD6, POD7, POD8 = "10.244.1.5", "10.244.1.6", "10.244.1.7", "10.244.1.8"
CACHE, NODE, UP = "169.254.20.10", "10.0.0.5", "169.254.169.253"
SYN, ACK, FIN, PSH = 0x02, 0x10, 0x01, 0x08


def tcp_exchange(recs, t_syns, t_synack, cport, isn, qid, labels, qtype, t_q, t_r, ident):
    """Append one DNS-over-TCP connection cache->upstream (SYNs at t_syns) to recs."""
    sisn = 7000 + isn
    for t in t_syns:
        recs.append((t, eth(tcp(NODE, cport, UP, 53, isn, 0, SYN, b"", ident))))
        ident += 1
    recs.append((t_synack, eth(tcp(UP, 53, NODE, cport, sisn, isn + 1, SYN | ACK, b"", 1))))
    recs.append(
        (t_synack + 0.0001, eth(tcp(NODE, cport, UP, 53, isn + 1, sisn + 1, ACK, b"", ident)))
    )
    q = dns(qid, 0x0100, labels, qtype)
    q = struct.pack(">H", len(q)) + q
    recs.append((t_q, eth(tcp(NODE, cport, UP, 53, isn + 1, sisn + 1, PSH | ACK, q, ident + 1))))
    r = dns(qid, 0x8180, labels, qtype, [bytes([93, 184, 216, 34])])
    r = struct.pack(">H", len(r)) + r
    recs.append((t_r, eth(tcp(UP, 53, NODE, cport, sisn + 1, isn + 1 + len(q), PSH | ACK, r, 2))))
    c_seq, s_seq = isn + 1 + len(q), sisn + 1 + len(r)
    recs.append(
        (t_r + 0.0001, eth(tcp(NODE, cport, UP, 53, c_seq, s_seq, FIN | ACK, b"", ident + 2)))
    )
    recs.append((t_r + 0.0002, eth(tcp(UP, 53, NODE, cport, s_seq, c_seq + 1, FIN | ACK, b"", 3))))
    recs.append(
        (t_r + 0.0003, eth(tcp(NODE, cport, UP, 53, c_seq + 1, s_seq + 1, ACK, b"", ident + 3)))
    )


def syn_retransmit() -> bytes:
    recs: list[tuple[float, bytes]] = []

    def uq(t, src, sp, qid, labels, qtype, ident):
        recs.append((t, eth(udp(src, sp, CACHE, 53, dns(qid, 0x0100, labels, qtype), ident))))

    def ur(t, dst, dp, qid, labels, qtype, rdata):
        recs.append((t, eth(udp(CACHE, 53, dst, dp, dns(qid, 0x8180, labels, qtype, [rdata]), 9))))

    api = [b"api", b"example", b"com"]
    uq(0.0, POD5, 40001, 0x1111, api, 1, 101)
    tcp_exchange(recs, [0.0005, 1.0005, 3.0005], 3.001, 50001, 1000, 0x2222,
                 [b"API", b"example", b"com"], 1, 3.0012, 3.003, 201)  # fmt: skip
    ur(3.0035, POD5, 40001, 0x1111, api, 1, bytes([93, 184, 216, 34]))
    uq(0.1, POD7, 40003, 0x4444, [b"lost", b"example", b"org"], 1, 102)
    fast = [b"fast", b"example", b"com"]
    uq(0.2, POD6, 40002, 0x3333, fast, 28, 103)
    ur(0.20015, POD6, 40002, 0x3333, fast, 28, bytes(15) + b"\x01")
    other = [b"other", b"example", b"net"]
    uq(0.5, POD5, 40004, 0x5555, other, 1, 104)
    tcp_exchange(recs, [0.5005], 0.5008, 50002, 5000, 0x6666, other, 1, 0.501, 0.503, 301)
    ur(0.5035, POD5, 40004, 0x5555, other, 1, bytes([198, 51, 100, 7]))
    uq(3.5, POD8, 40005, 0x7777, [b"late", b"example", b"com"], 1, 105)
    return pcap(recs)


def pipelined_qdcount() -> bytes:
    """Three queries in ONE TCP segment (mid-stream, no handshake): QDCOUNT 2, 0 and 1."""

    def msg(id_: int, names: list[list[bytes]]) -> bytes:
        out = struct.pack(">HHHHHH", id_, 0x0100, len(names), 0, 0, 0)
        for labels in names:
            out += name(labels) + struct.pack(">HH", 1, 1)
        return struct.pack(">H", len(out)) + out

    payload = (
        msg(1, [[b"a", b"example"], [b"b", b"example"]]) + msg(2, []) + msg(3, [[b"c", b"example"]])
    )
    seg = tcp("10.0.0.1", 40000, "10.0.0.2", 53, 1000, 5000, PSH | ACK, payload, 1)
    return pcap([(0.0, eth(seg))])


def weird() -> bytes:
    labels = [b"a|b", b"t\tab", b"n\nl", b"x\x1fy", b"\xff\xfe", b'q"<s> ', b"d.ot", b"\\bs",
              b"UpPer", b"com"]  # fmt: skip
    q = udp("10.0.0.1", 40000, "10.0.0.2", 53, dns(0x1234, 0x0100, labels, 16), 1)
    r = udp("10.0.0.2", 53, "10.0.0.1", 40000, dns(0x1234, 0x8183, labels, 16), 2)
    return pcap([(0.0, q), (0.0005, r)], linktype=101)


def main() -> None:
    syn = syn_retransmit()
    files = {
        "syn_retransmit.pcap": syn,
        "syn_retransmit.pcap.gz": gzip.compress(syn, mtime=0),
        "truncated_tail.pcap": syn[: -(len(eth(b"")) + 20)],
        "weird_qnames.pcap": weird(),
        "pipelined_qdcount.pcap": pipelined_qdcount(),
        "empty.pcap": b"",
        "not_a_capture.pcap": b"this is a text file, not a packet capture\n",
        "header_only.pcap": pcap([]),
        "unknown_linktype.pcap": pcap([(0.0, b"\x00" * 40), (0.001, b"\x01" * 40)], linktype=147),
    }
    for n, data in files.items():
        (HERE / n).write_bytes(data)
        print(f"{n}: {len(data)} bytes")


if __name__ == "__main__":
    main()
