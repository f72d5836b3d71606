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
issue11_tcp.pcap (issue 11 items 2 and 4; expected values in tests/test_capture_issue11.py):
  t=0.000  doh 10.0.0.1:41000 <-> 10.0.0.2:80 TCP handshake, then HTTP/2 with prior knowledge
           (h2c): POST /dns-query on stream 1 (A one.example, DNS ID 0) and stream 3 (A two.example,
           ID 0) before any answer; the server answers stream 3 (2.2.2.2) first, then stream 1
  t=0.100  10.0.0.1:42000 -> 10.0.0.2:5353 DNS over TCP with handshake (SRV svc.local, id 0x55)
  t=0.200  10.0.0.3:53 -> 10.0.0.4:53 mid-stream DNS over TCP (no handshake; the client's source
           port is 53 too, like BIND's query-source port 53): query A mid.example id 0x77, answer
  t=0.300  10.1.1.1 -> 10.1.1.2 GRE (ERSPAN type II) in two outer IPv4 fragments, inner
           192.168.1.10:43000 -> 192.168.1.20:80 HTTP GET (no DNS anywhere)
issue11_update_root.pcap (items 3, 5 and 6):
  t=0.000  UDP UPDATE (opcode 5) zone example.com, one A record added, id 0x0003; NOERROR answer
  t=0.010  one TCP segment (mid-stream) carrying an UPDATE (zone example.org, id 0x0010) and a
           QUERY (A www.example.org, id 0x0011), then one segment with both answers
  t=0.020  UDP NS query for the root name (priming), id 0x0001, answered NOERROR
  t=0.030  junk query id 0x4242: QDCOUNT 1 but the question's first label claims 63 bytes and
           3 follow (malformed); the server answers FORMERR with no question
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


def _h2(ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
    """One HTTP/2 frame (RFC 9113 section 4.1)."""
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([ftype, flags])
        + struct.pack(">I", sid)
        + payload
    )


def _hpack(headers: list[tuple[bytes, bytes]]) -> bytes:
    """Header block of literal fields without indexing, new names, no Huffman (RFC 7541 6.2.2)."""
    return b"".join(b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v for n, v in headers)


class _Conn:
    """A TCP connection after its handshake: tracks sequence numbers for each direction."""

    def __init__(self, recs, c, cp, s, sp, cseq, sseq, ident):
        self.recs, self.c, self.cp, self.s, self.sp = recs, c, cp, s, sp
        self.cseq, self.sseq, self.ident = cseq, sseq, ident

    def handshake(self, t: float) -> None:
        self.recs.append((t, eth(tcp(self.c, self.cp, self.s, self.sp, self.cseq, 0, SYN, b"", 1))))
        self.recs.append(
            (t + 0.001, eth(tcp(self.s, self.sp, self.c, self.cp, self.sseq, self.cseq + 1,
                                SYN | ACK, b"", 2)))
        )  # fmt: skip
        self.cseq, self.sseq = self.cseq + 1, self.sseq + 1
        self.recs.append(
            (
                t + 0.002,
                eth(tcp(self.c, self.cp, self.s, self.sp, self.cseq, self.sseq, ACK, b"", 3)),
            )
        )

    def client(self, t: float, data: bytes) -> None:
        self.ident += 1
        self.recs.append((t, eth(tcp(self.c, self.cp, self.s, self.sp, self.cseq, self.sseq,
                                     PSH | ACK, data, self.ident))))  # fmt: skip
        self.cseq += len(data)

    def server(self, t: float, data: bytes) -> None:
        self.ident += 1
        self.recs.append((t, eth(tcp(self.s, self.sp, self.c, self.cp, self.sseq, self.cseq,
                                     PSH | ACK, data, self.ident))))  # fmt: skip
        self.sseq += len(data)


def _lp(msg: bytes) -> bytes:
    return struct.pack(">H", len(msg)) + msg


def issue11_tcp() -> bytes:
    recs: list[tuple[float, bytes]] = []
    # DoH over h2c: two queries with ID 0 in flight at once, answered in the other order
    h = _Conn(recs, "10.0.0.1", 41000, "10.0.0.2", 80, 1000, 9000, 10)
    h.handshake(0.0)
    req = _hpack([(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/dns-query"),
                  (b":authority", b"doh.example"), (b"content-type", b"application/dns-message")])  # fmt: skip
    resp = _hpack([(b":status", b"200"), (b"content-type", b"application/dns-message")])
    one, two = [b"one", b"example"], [b"two", b"example"]
    h.client(0.003, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _h2(4, 0, 0, b""))
    h.server(0.004, _h2(4, 0, 0, b"") + _h2(4, 1, 0, b""))
    h.client(0.005, _h2(4, 1, 0, b"") + _h2(1, 4, 1, req) + _h2(0, 1, 1, dns(0, 0x0100, one, 1)))
    h.client(0.006, _h2(1, 4, 3, req) + _h2(0, 1, 3, dns(0, 0x0100, two, 1)))
    r2 = dns(0, 0x8180, two, 1, [bytes([2, 2, 2, 2])])
    h.server(0.010, _h2(1, 4, 3, resp) + _h2(0, 1, 3, r2))
    r1 = dns(0, 0x8180, one, 1, [bytes([1, 1, 1, 1])])
    h.server(0.020, _h2(1, 4, 1, resp) + _h2(0, 1, 1, r1))
    # DNS over TCP on port 5353, full handshake
    m = _Conn(recs, "10.0.0.1", 42000, "10.0.0.2", 5353, 2000, 8000, 20)
    m.handshake(0.1)
    m.client(0.103, _lp(dns(0x55, 0x0100, [b"svc", b"local"], 33)))
    m.server(0.104, _lp(dns(0x55, 0x8400, [b"svc", b"local"], 33)))
    # port 53 <-> port 53, no handshake in the capture: the query's sender is the client
    b = _Conn(recs, "10.0.0.3", 53, "10.0.0.4", 53, 3000, 7000, 30)
    b.client(0.2, _lp(dns(0x77, 0x0100, [b"mid", b"example"], 1)))
    b.server(0.201, _lp(dns(0x77, 0x8180, [b"mid", b"example"], 1, [bytes([3, 3, 3, 3])])))
    # HTTP inside GRE/ERSPAN whose outer IPv4 packet is fragmented
    inner = eth(tcp("192.168.1.10", 43000, "192.168.1.20", 80, 100, 200, PSH | ACK,
                    b"GET / HTTP/1.1\r\nHost: www\r\n\r\n" + b"x" * 60, 7))  # fmt: skip
    gre = struct.pack(">HHI", 0x1000, 0x88BE, 1) + struct.pack(">HHI", 0x1000 | 1, 0, 0) + inner
    cut = 48  # a multiple of 8

    def frag(payload: bytes, off8: int, more: bool) -> bytes:
        hdr = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 77,
                          (0x2000 if more else 0) | off8, 64, 47, 0, ip4("10.1.1.1"),
                          ip4("10.1.1.2"))  # fmt: skip
        return hdr[:10] + struct.pack(">H", csum(hdr)) + hdr[12:] + payload

    recs.append((0.3, eth(frag(gre[:cut], 0, True))))
    recs.append((0.301, eth(frag(gre[cut:], cut // 8, False))))
    return pcap(recs)


def issue11_update_root() -> bytes:
    recs: list[tuple[float, bytes]] = []

    def update(
        id_: int, flags: int, zone: list[bytes], adds: list[tuple[list[bytes], bytes]]
    ) -> bytes:
        out = struct.pack(">HHHHHH", id_, flags, 1, 0, len(adds), 0)
        out += name(zone) + struct.pack(">HH", 6, 1)  # zone section: <zone> SOA IN
        for owner, rdata in adds:
            out += name(owner) + struct.pack(">HHIH", 1, 1, 300, len(rdata)) + rdata
        return out

    com = [b"example", b"com"]
    add = [([b"www", b"example", b"com"], bytes([192, 0, 2, 1]))]
    recs.append((0.0, eth(udp("10.0.0.1", 40002, "10.0.0.2", 53, update(3, 0x2800, com, add), 1))))
    recs.append((0.001, eth(udp("10.0.0.2", 53, "10.0.0.1", 40002, update(3, 0xA800, com, []), 2))))
    org, www = [b"example", b"org"], [b"www", b"example", b"org"]
    t = _Conn(recs, "10.0.0.1", 40003, "10.0.0.2", 53, 5000, 6000, 10)
    t.client(0.010, _lp(update(0x10, 0x2800, org, [(www, bytes([192, 0, 2, 2]))]))
             + _lp(dns(0x11, 0x0100, www, 1)))  # fmt: skip
    t.server(0.011, _lp(update(0x10, 0xA800, org, []))
             + _lp(dns(0x11, 0x8180, www, 1, [bytes([192, 0, 2, 2])])))  # fmt: skip
    recs.append((0.020, eth(udp("10.0.0.1", 40004, "10.0.0.2", 53, dns(1, 0x0100, [], 2), 3))))
    recs.append((0.021, eth(udp("10.0.0.2", 53, "10.0.0.1", 40004, dns(1, 0x8180, [], 2), 4))))
    junk = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + b"\x3fabc"
    recs.append((0.030, eth(udp("10.0.0.1", 40005, "10.0.0.2", 53, junk, 5))))
    formerr = struct.pack(">HHHHHH", 0x4242, 0x8101, 0, 0, 0, 0)
    recs.append((0.031, eth(udp("10.0.0.2", 53, "10.0.0.1", 40005, formerr, 6))))
    return pcap(recs)


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
        "issue11_tcp.pcap": issue11_tcp(),
        "issue11_update_root.pcap": issue11_update_root(),
    }
    for n, data in files.items():
        (HERE / n).write_bytes(data)
        print(f"{n}: {len(data)} bytes")


if __name__ == "__main__":
    main()
