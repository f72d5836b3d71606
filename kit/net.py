"""Network concepts shared by every layer: address normalisation and TCP flag predicates.

One address normaliser (:func:`address`, :func:`addresses`) serves the user's ``-p upstream``
parameter, Corefile ``forward`` targets and capture columns alike, so ``dns://169.254.169.253``,
``169.254.169.253:53`` and ``169.254.169.253`` name the same server everywhere, and an IPv6
address written in upper case or with its zeros spelled out matches the canonical (lower-case,
compressed) form tshark writes in ``src_ip`` / ``dst_ip``.

The TCP flag predicates are the one spelling of "SYN without ACK" (a connection attempt) and its
relatives, for Python integers and for polars expressions over ``tcp_flags`` (UInt8/UInt16).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

import polars as pl

__all__ = [
    "ACK",
    "FIN",
    "RST",
    "SYN",
    "address",
    "addresses",
    "as_list",
    "is_closing",
    "is_syn",
    "is_synack",
    "syn_expr",
    "synack_expr",
]

#: ``scheme://`` prefix of a Corefile upstream (``dns://``, ``tls://``, ``https://``...).
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

#: TCP header flag bits (RFC 9293).
FIN = 0x01
SYN = 0x02
RST = 0x04
ACK = 0x10


def address(text: str | None) -> str | None:
    """The canonical IP address in ``text``, or ``None`` when it holds no IP address literal.

    Accepted: ``1.2.3.4``, ``1.2.3.4:53``, ``dns://1.2.3.4``, ``tls://1.2.3.4:853``,
    ``[2001:DB8::1]:53``, ``2001:0db8:0:0:0:0:0:1``, ``fe80::1%eth0`` (the zone is dropped).
    Canonical means :func:`ipaddress.ip_address`'s text: IPv6 lower case and compressed.
    A placeholder (``__PILLAR__CLUSTER__DNS__``), a file (``/etc/resolv.conf``) or a host name
    gives ``None``.
    """
    if text is None:
        return None
    u = _SCHEME.sub("", str(text).strip())
    if u.startswith("["):
        u = u[1 : u.find("]")] if "]" in u else u[1:]
    elif u.count(":") == 1:
        u = u.split(":", 1)[0]
    u = u.split("%", 1)[0]
    try:
        return str(ipaddress.ip_address(u))
    except ValueError:
        return None


def as_list(items: str | Sequence[str] | None) -> list[str] | None:
    """``None`` stays ``None``; one string is a list of one; any other sequence a list."""
    if items is None:
        return None
    return [items] if isinstance(items, str) else [str(i) for i in items]


def addresses(items: str | Sequence[str] | None) -> list[str]:
    """Addresses given by the user, each normalised by :func:`address`, in order, without repeats.

    A single string is one address. An item that holds no IP address literal is kept as written
    (stripped), so a filter on it matches nothing rather than something else; empty items are
    left out.
    """
    out: list[str] = []
    for item in as_list(items) or []:
        text = str(item).strip()
        if not text:
            continue
        addr = address(text) or text
        if addr not in out:
            out.append(addr)
    return out


def is_syn(flags: int | None) -> bool:
    """A connection attempt: SYN set, ACK clear (``flags & 0x12 == 0x02``)."""
    return flags is not None and (int(flags) & (SYN | ACK)) == SYN


def is_synack(flags: int | None) -> bool:
    """A connection acceptance: SYN and ACK set."""
    return flags is not None and (int(flags) & (SYN | ACK)) == SYN | ACK


def is_closing(flags: int | None) -> bool:
    """FIN or RST set."""
    return flags is not None and (int(flags) & (FIN | RST)) != 0


def _flags(col: str | pl.Expr) -> pl.Expr:
    return (pl.col(col) if isinstance(col, str) else col).cast(pl.Int64)


def syn_expr(col: str | pl.Expr = "tcp_flags") -> pl.Expr:
    """Polars form of :func:`is_syn` (null flags give null)."""
    return (_flags(col) & (SYN | ACK)) == SYN


def synack_expr(col: str | pl.Expr = "tcp_flags") -> pl.Expr:
    """Polars form of :func:`is_synack`."""
    return (_flags(col) & (SYN | ACK)) == (SYN | ACK)


def flag_expr(bit: int, col: str | pl.Expr = "tcp_flags") -> pl.Expr:
    """``bit`` (e.g. :data:`FIN`, :data:`RST`, ``FIN | RST``) set in the flags: any of them."""
    return (_flags(col) & bit) > 0
