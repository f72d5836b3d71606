"""The PromQL parser: tokens to the syntax tree of :mod:`._ast`, with Prometheus's error messages."""

from __future__ import annotations

import dataclasses
import math
import re

from kit.promql._ast import (
    _AGGREGATIONS,
    _ARITH_PREC,
    _ARITY,
    _CMP_SET_PREC,
    _COMPARISONS,
    _DATE_FUNCTIONS,
    _FUNCTIONS,
    _KNOWN_FUNCTIONS,
    _NOT_RE2,
    _PARAM_AGGREGATIONS,
    _RANGE_FUNCTIONS,
    _SET_OPS,
    _UNSUPPORTED_AGGREGATIONS,
    _Agg,
    _Binary,
    _Call,
    _Matcher,
    _Number,
    _range_arg,
    _re2_to_python,
    _Selector,
    _String,
    _Subquery,
    _Unary,
)
from kit.promql._base import _LATEST, _NAME, PromQLError, _Semantics
from kit.promql._lexer import _lex, _Tok


class _Parser:
    def __init__(self, expr: str, sem: _Semantics = _LATEST) -> None:
        self.expr = expr
        self.sem = sem
        self.toks = _lex(expr)
        self.i = 0

    # helpers
    def peek(self, k: int = 0) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> _Tok:
        tok = self.toks[self.i]
        self.i = min(self.i + 1, len(self.toks) - 1)
        return tok

    def error(self, message: str, tok: _Tok) -> PromQLError:
        return PromQLError(message, expr=self.expr, position=tok.pos, construct=tok.text or None)

    def expect(self, kind: str, text: str | None = None) -> _Tok:
        tok = self.next()
        if tok.kind != kind or (text is not None and tok.text != text):
            want = text or kind.lower()
            got = tok.text or "end of expression"
            raise self.error(f"expected {want!r}, got {got!r}", tok)
        return tok

    def at(self, text: str) -> bool:
        """The next token is ``text``; keywords (by, on, bool, offset...) in any case, as PromQL."""
        tok = self.peek()
        if tok.kind == "IDENT":
            return tok.text.lower() == text
        return tok.kind == "OP" and tok.text == text

    # grammar
    def parse(self) -> object:
        if self.peek().kind == "EOF":
            raise self.error("empty expression", self.peek())
        node = self.parse_expr(0)
        tok = self.peek()
        if tok.kind != "EOF":
            raise self.error(f"unexpected {tok.text!r}", tok)
        return node

    def _binop_at(self) -> tuple[str, int] | None:
        tok = self.peek()
        if tok.kind == "OP" and tok.text in _ARITH_PREC:
            return tok.text, _ARITH_PREC[tok.text]
        if tok.kind == "OP" and tok.text in _CMP_SET_PREC:
            return tok.text, _CMP_SET_PREC[tok.text]
        if tok.kind == "IDENT" and tok.text.lower() in ("and", "or", "unless", "atan2"):
            low = tok.text.lower()
            return low, _ARITH_PREC.get(low) or _CMP_SET_PREC[low]
        return None

    def parse_expr(self, min_prec: int) -> object:
        lhs = self.parse_unary()
        while True:
            found = self._binop_at()
            if found is None or found[1] < min_prec:
                return lhs
            op, prec = found
            tok = self.next()
            on: tuple[str, ...] | None = None
            ignoring: tuple[str, ...] = ()
            return_bool = False
            if self.at("bool"):
                if op not in _COMPARISONS:
                    raise self.error(
                        "the 'bool' modifier is only valid with comparisons", self.peek()
                    )
                self.next()
                return_bool = True
            has_matching = self.at("on") or self.at("ignoring")
            if has_matching:
                kw = self.next().text.lower()
                labels = self.parse_label_list()
                if kw == "on":
                    on = labels
                else:
                    ignoring = labels
            card = "one-to-one"
            include: tuple[str, ...] = ()
            if self.at("group_left") or self.at("group_right"):
                gtok = self.next()
                if not has_matching:
                    raise self.error(f"{gtok.text} needs on(...) or ignoring(...) before it", gtok)
                if op in _SET_OPS:
                    raise self.error(f"no grouping allowed for {op!r} operation", gtok)
                card = "many-to-one" if gtok.text.lower() == "group_left" else "one-to-many"
                if self.at("("):
                    include = self.parse_label_list()
                both = set(include) & set(on or ())
                if both:
                    raise self.error(
                        f"label {sorted(both)[0]!r} must not occur in ON and GROUP clause at once",
                        gtok,
                    )
            # '^' is right-associative, the others left-associative
            rhs = self.parse_expr(prec if op == "^" else prec + 1)
            lhs = _Binary(
                op,
                lhs,
                rhs,
                tok.pos,
                on=on,
                ignoring=ignoring,
                return_bool=return_bool,
                card=card,
                include=include,
            )

    def parse_unary(self) -> object:
        tok = self.peek()
        if tok.kind == "OP" and tok.text in ("-", "+"):
            self.next()
            # unary minus binds like '*' (Prometheus grammar: unary_expr %prec MUL)
            operand = self.parse_expr(_ARITH_PREC["^"])
            if isinstance(operand, _Number):
                return _Number(-operand.value if tok.text == "-" else operand.value, tok.pos)
            return _Unary(tok.text, operand, tok.pos)
        return self.parse_postfix(self.parse_primary())

    def parse_postfix(self, node: object) -> object:
        while True:
            tok = self.peek()
            if tok.kind == "OP" and tok.text == "[":
                if isinstance(node, _Subquery) or (
                    isinstance(node, _Selector) and node.range_ms is not None
                ):
                    raise self.error("a range '[...]' cannot follow a range vector", tok)
                self.next()
                dur = self.expect_duration()
                if dur <= 0:
                    raise self.error("range must be positive", tok)
                if self.at(":"):
                    self.next()
                    step = None if self.at("]") else self.expect_duration()
                    self.expect("OP", "]")
                    if step is not None and step <= 0:
                        raise self.error("subquery step must be positive", tok)
                    node = _Subquery(node, dur, step, tok.pos)
                    continue
                self.expect("OP", "]")
                if not isinstance(node, _Selector):
                    raise self.error(
                        "a range '[5m]' may only follow a selector (for an expression use a subquery '[5m:1m]')",
                        tok,
                    )
                node = dataclasses.replace(node, range_ms=dur)
            elif tok.kind == "IDENT" and tok.text.lower() == "offset":
                if not isinstance(node, _Selector | _Subquery) or node.offset_ms:
                    raise self.error("'offset' may only follow a selector or a subquery, once", tok)
                self.next()
                sign = 1
                if self.at("-"):
                    self.next()
                    sign = -1
                off = sign * self.expect_duration()
                node = dataclasses.replace(node, offset_ms=off)
            elif tok.kind == "OP" and tok.text == "@":
                if not isinstance(node, _Selector | _Subquery):
                    raise self.error("'@' may only follow a selector or a subquery", tok)
                if node.at is not None:
                    raise self.error("'@ <timestamp>' may not be set multiple times", tok)
                self.next()
                node = dataclasses.replace(node, at=self.parse_at())
            else:
                return node

    def parse_at(self) -> int | str:
        """After '@': Unix seconds (to ms, rounded like Prometheus), or start() / end()."""
        tok = self.next()
        if tok.kind == "IDENT" and tok.text.lower() in ("start", "end") and self.at("("):
            self.next()
            self.expect("OP", ")")
            return tok.text.lower()
        sign = 1.0
        if tok.kind == "OP" and tok.text in "+-":
            sign = -1.0 if tok.text == "-" else 1.0
            tok = self.next()
        if tok.kind != "NUMBER":
            raise self.error("'@' needs a Unix time in seconds, start() or end()", tok)
        value = sign * float(tok.value)  # type: ignore[arg-type]
        if not math.isfinite(value):
            raise self.error(f"invalid '@' time {tok.text!r}", tok)
        return round(value * 1000)

    def expect_duration(self) -> int:
        tok = self.next()
        if tok.kind == "DURATION":
            return int(tok.value)  # type: ignore[call-overload]
        if tok.kind == "NUMBER" and self.sem.numbers_as_durations:
            # Prometheus >= 2.54 (#9138; stable in 3.0, #15111): a number is a duration in seconds
            value = float(tok.value)  # type: ignore[arg-type]
            if not math.isfinite(value) or value < 0:
                raise self.error(f"invalid duration {tok.text!r}", tok)
            return round(value * 1000)
        if tok.kind == "NUMBER" and tok.text.isdigit():
            # Prometheus before 2.54 requires a unit; a bare number is an error there too
            raise self.error("duration needs a unit (e.g. 5m, 30s)", tok)
        raise self.error(f"expected a duration, got {tok.text or 'end of expression'!r}", tok)

    def parse_primary(self) -> object:
        tok = self.next()
        if tok.kind == "NUMBER":
            return _Number(float(tok.value), tok.pos)  # type: ignore[arg-type]
        if tok.kind == "DURATION":
            if self.sem.numbers_as_durations:  # Prometheus >= 2.54: 10m is the number 600
                return _Number(int(tok.value) / 1000, tok.pos)  # type: ignore[call-overload]
            raise self.error("a duration is only valid inside '[...]' or after 'offset'", tok)
        if tok.kind == "STRING":
            return _String(str(tok.value), tok.pos)
        if tok.kind == "OP" and tok.text == "(":
            node = self.parse_expr(0)
            self.expect("OP", ")")
            return node
        if tok.kind == "OP" and tok.text == "{":
            self.i -= 1
            return self.parse_selector(None, tok)
        if tok.kind == "IDENT":
            low = tok.text.lower()
            if low in ("inf", "nan") and not (self.at("{") or self.at("(")):
                return _Number(math.inf if low == "inf" else math.nan, tok.pos)
            # aggregation operators and keywords are case-insensitive (SUM BY (job) ...), function
            # names are not (Prometheus: "unknown function with name RATE")
            is_agg = low in _AGGREGATIONS or low in _UNSUPPORTED_AGGREGATIONS
            if is_agg and (self.at("(") or self.at("by") or self.at("without")):
                return self.parse_aggregation(tok)
            if self.at("("):
                return self.parse_call(tok)
            if low in ("by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless", "atan2"):  # fmt: skip
                raise self.error(f"unexpected keyword {tok.text!r}", tok)
            return self.parse_selector(tok.text, tok)
        raise self.error(f"unexpected {tok.text or 'end of expression'!r}", tok)

    def parse_label_list(self) -> tuple[str, ...]:
        self.expect("OP", "(")
        names: list[str] = []
        while not self.at(")"):
            tok = self.next()
            if tok.kind != "IDENT" or ":" in tok.text:
                raise self.error(f"expected a label name, got {tok.text!r}", tok)
            names.append(tok.text)
            if not self.at(")"):
                self.expect("OP", ",")
        self.expect("OP", ")")
        return tuple(names)

    def parse_aggregation(self, tok: _Tok) -> _Agg:
        op = tok.text.lower()
        if op in _UNSUPPORTED_AGGREGATIONS:
            raise self.error(
                f"aggregation {op!r} is not supported (supported: {', '.join(sorted(_AGGREGATIONS))})",
                tok,
            )
        grouping: tuple[str, ...] = ()
        without = False
        seen_clause = False
        if self.at("by") or self.at("without"):
            without = self.next().text.lower() == "without"
            grouping = self.parse_label_list()
            seen_clause = True
        self.expect("OP", "(")
        if self.at(")"):
            raise self.error(f"{op}() needs an argument", self.peek())
        param = None
        if op in _PARAM_AGGREGATIONS:
            ptok = self.peek()
            param = self.parse_expr(0)
            if op == "count_values" and not isinstance(param, _String):
                raise self.error("count_values() expects a string (the label name) first", ptok)
            if op != "count_values" and isinstance(param, _String):
                raise self.error(f"{op}() expects a number first, got a string", ptok)
            self.expect("OP", ",")
        arg = self.parse_expr(0)
        if self.at(","):
            raise self.error(
                f"{op}() takes exactly {2 if param is not None else 1} argument(s)",
                self.peek(),
            )
        self.expect("OP", ")")
        if self.at("by") or self.at("without"):
            if seen_clause:
                raise self.error("grouping given twice", self.peek())
            without = self.next().text.lower() == "without"
            grouping = self.parse_label_list()
        return _Agg(op, arg, grouping, without, tok.pos, param)

    def parse_call(self, tok: _Tok) -> _Call:
        name = tok.text
        if name not in _FUNCTIONS:
            if name in _KNOWN_FUNCTIONS:
                raise self.error(
                    f"function {name}() is not supported (supported: {', '.join(sorted(_FUNCTIONS))})",
                    tok,
                )
            raise self.error(f"unknown function {name}()", tok)
        if name == "holt_winters" and self.sem.v3:
            raise self.error(
                "holt_winters() is called double_exponential_smoothing() in Prometheus 3 and needs "
                "--enable-feature=promql-experimental-functions (prometheus#14930); not supported",
                tok,
            )
        self.expect("OP", "(")
        args: list[object] = []
        while not self.at(")"):
            atok = self.peek()
            arg = self.parse_expr(0)
            # strings, also in parentheses: label_replace(x, ("dst"), ...), as Prometheus accepts
            wants_string = name in ("label_replace", "label_join") and args
            if wants_string and not isinstance(arg, _String):
                raise self.error(f"{name}() expects a string here, got {atok.text!r}", atok)
            if isinstance(arg, _String) and not wants_string:
                raise self.error(f"{name}() does not take a string here", atok)
            args.append(arg.value if isinstance(arg, _String) else arg)
            if not self.at(")"):
                self.expect("OP", ",")
        self.expect("OP", ")")
        if name == "label_join":
            if len(args) < 3:
                raise self.error(f"label_join() takes at least 3 arguments, got {len(args)}", tok)
            return _Call(name, tuple(args), tok.pos)
        want = _ARITY[name]
        if (name == "round" and len(args) == 2) or (name in _DATE_FUNCTIONS and not args):
            want = len(args)
        if len(args) != want:
            raise self.error(f"{name}() takes {want} argument(s), got {len(args)}", tok)
        if name in _RANGE_FUNCTIONS:
            arg = args[_range_arg(name)]
            is_range = isinstance(arg, _Subquery) or (
                isinstance(arg, _Selector) and arg.range_ms is not None
            )
            if not is_range:
                raise self.error(f"{name}() needs a range selector argument like x[5m]", tok)
        return _Call(name, tuple(args), tok.pos)

    def parse_selector(self, name: str | None, tok: _Tok) -> _Selector:
        matchers: list[_Matcher] = []
        if name is not None:
            matchers.append(_Matcher(_NAME, "=", name))
        if self.at("{"):
            self.next()
            while not self.at("}"):
                ltok = self.next()
                if ltok.kind == "STRING" or ltok.kind != "IDENT" or ":" in ltok.text:
                    raise self.error(f"expected a label name, got {ltok.text!r}", ltok)
                otok = self.next()
                if otok.kind != "OP" or otok.text not in ("=", "!=", "=~", "!~"):
                    raise self.error(
                        f"expected a label matcher operator (=, !=, =~, !~), got {otok.text!r}",
                        otok,
                    )
                vtok = self.next()
                if vtok.kind != "STRING":
                    raise self.error(f"expected a quoted label value, got {vtok.text!r}", vtok)
                value = str(vtok.value)
                regex = regex_v2 = None
                if otok.text in ("=~", "!~"):
                    bad = _NOT_RE2.search(value)
                    if bad:
                        raise self.error(
                            f"invalid regular expression: {bad.group()!r} (lookaround, backreference) "
                            "is not RE2 syntax",
                            vtok,
                        )
                    try:
                        py = _re2_to_python(value)
                        regex = re.compile(py, re.DOTALL)
                        regex_v2 = re.compile(py)
                    except re.error as exc:
                        raise self.error(f"invalid regular expression ({exc})", vtok) from None
                if ltok.text == _NAME and name is not None:
                    raise self.error("metric name given twice", ltok)
                matchers.append(_Matcher(ltok.text, otok.text, value, regex, regex_v2))
                if not self.at("}"):
                    self.expect("OP", ",")
            self.expect("OP", "}")
        if not matchers or all(m.matches_empty() for m in matchers):
            raise self.error(
                "vector selector must contain at least one matcher that does not match the empty string",
                tok,
            )
        end = self.peek().pos
        return _Selector(tuple(matchers), tok.pos, text=self.expr[tok.pos : end].strip())
