"""Custom ``log`` plugin formats (``log_format=``): a Corefile format string to an anchored regex."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kit.errors import InputFormatError
from kit.sources.corefile import COMBINED_LOG_FORMAT, COMMON_LOG_FORMAT

# placeholder -> (capture group name, regex)
_PLACEHOLDERS: dict[str, tuple[str, str]] = {
    "{remote}": ("remote", r"\[[^\]\s]*\]|[^\s\[\]\"]+?"),
    "{port}": ("port", r"\d+"),
    "{>id}": ("id", r"\d+"),
    "{type}": ("type", r"\S+?"),
    "{class}": ("class", r"\S+?"),
    "{name}": ("name", r'(?:\\.|[^ \\"])+'),
    "{proto}": ("proto", r"udp|tcp"),
    "{size}": ("size", r"\d+"),
    "{>do}": ("do", r"true|false"),
    "{>bufsize}": ("bufsize", r"\d+"),
    "{rcode}": ("rcode", r"\S+?"),
    "{>rflags}": ("rflags", r"[a-z,]*|-"),
    "{rsize}": ("rsize", r"\d+"),
    "{duration}": ("duration", r"[0-9][0-9.a-zµμ]*"),
    "{>opcode}": ("opcode", r"\d+"),
    "{when}": ("when", r"[^\]]+"),
}
_REGEX_META = set("\\.+*?()|[]{}^$#&-~")


@dataclass(frozen=True)
class _CustomFormat:
    text: str
    regex: str
    is_default: bool


def _compile_log_format(fmt: str) -> _CustomFormat:
    """Turn a ``log`` plugin format string into an anchored regex with named groups."""
    if not isinstance(fmt, str) or not fmt.strip():
        raise InputFormatError(
            f"log_format must be a non-empty format string, not {fmt!r}",
            hint='Pass the last argument of the Corefile\'s log line, e.g. "{common}"',
        )
    text = fmt.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1]
    text = text.replace("{common}", COMMON_LOG_FORMAT).replace("{combined}", COMBINED_LOG_FORMAT)
    is_default = text in (COMMON_LOG_FORMAT, COMBINED_LOG_FORMAT)
    out: list[str] = ["^"]
    used: set[str] = set()
    for tok in re.split(r"(\{[^{}\s]*\})", text):
        if not tok:
            continue
        if tok in _PLACEHOLDERS:
            name, rx = _PLACEHOLDERS[tok]
            if name in used:
                out.append(f"(?:{rx})")
            else:
                used.add(name)
                out.append(f"(?<{name}>{rx})")
        elif tok.startswith("{") and tok.endswith("}"):
            out.append(r"\S*?")  # a placeholder without a column ({local}, {/meta}, ...)
        else:
            out.append("".join("\\" + c if c in _REGEX_META else c for c in tok))
    out.append("$")
    if not used:
        raise InputFormatError(
            f"log_format {fmt!r} has no placeholder the kit can read",
            hint="Use CoreDNS placeholders such as {remote} {name} {type} {rcode} {duration}",
        )
    return _CustomFormat(text=text, regex="".join(out), is_default=is_default)
