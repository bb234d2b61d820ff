"""Parse OCA rule text with a real grammar (lark, LALR): never ``eval``.

>>> rules = parse_oca('if DPR.TYPE like "%BIAS%" then { DO.CATG = "BIAS"; }')
>>> rules.counts()["classification"]
1
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lark import (
    Lark,
    Token,
    Transformer,
    Tree,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    v_args,
)
from lark.exceptions import VisitError

from qclib.errors import ConfigError
from qclib.oca.rules import (
    CALIB_SOURCES,
    INPUT_PREFIX,
    RAW_SOURCES,
    Action,
    And,
    Arithmetic,
    Assignment,
    Association,
    Between,
    Boolean,
    Classification,
    Compare,
    Expr,
    Keyword,
    Like,
    Negative,
    Not,
    Number,
    Or,
    Organisation,
    Product,
    Regexp,
    RuleSet,
    Text,
    Truth,
    TypeTest,
)

_GRAMMAR = Path(__file__).with_name("oca.lark")
_VALUES = (Keyword, Text, Number, Boolean, Arithmetic, Negative)


class OCASyntaxError(ConfigError):
    """A rule file does not parse, or says something impossible; names file, line, column."""

    def __init__(self, source: str, line: int, column: int, message: str) -> None:
        super().__init__(f"{source}:{line}:{column}: {message}")
        self.source = source
        self.line = line
        self.column = column
        self.message = message


@functools.cache
def _parser() -> Lark:
    return Lark(_GRAMMAR.read_text(), parser="lalr", propagate_positions=True)


class _ProblemError(Exception):
    """A well-formed text that means nothing (raised inside the transformer)."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line, self.column, self.message = line, column, message


@dataclass(frozen=True)
class _Retention:
    which: str  # minRet | maxRet
    value: int
    line: int
    column: int


@dataclass(frozen=True)
class _Select:
    tag: str
    source: str
    condition: Expr
    line: int


@dataclass(frozen=True)
class _Recipe:
    name: str
    parameters: tuple[str, ...]
    line: int
    column: int


@dataclass(frozen=True)
class _Priority:
    value: int
    line: int
    column: int


def _at(item: object) -> tuple[int, int]:
    """Line and column of a token or a tree."""
    if isinstance(item, Token):
        return item.line or 1, item.column or 1
    meta = getattr(item, "meta", None)
    return getattr(meta, "line", 1), getattr(meta, "column", 1)


def _value(item: object, line: int, column: int) -> object:
    """``item`` used as a value: a bare value in a condition position is unwrapped."""
    if isinstance(item, Truth):
        return item.operand
    if isinstance(item, _VALUES):
        return item
    text = item.to_oca() if hasattr(item, "to_oca") else str(item)
    raise _ProblemError(line, column, f"the condition ({text}) is used as a value; compare values")


def _unquote(token: Token) -> str:
    return str(token)[1:-1]


@v_args(meta=True)
class _Build(Transformer):
    """Turns one statement's lark tree into the dataclasses of ``qclib.oca.rules``."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    # values
    def keyword(self, meta, items):  # type: ignore[no-untyped-def]
        name = str(items[0])
        if name in ("T", "F"):
            return Boolean(name == "T")
        if name.startswith(INPUT_PREFIX):
            return Keyword(name[len(INPUT_PREFIX) :], of_input=True)
        return Keyword(name)

    def string(self, meta, items):  # type: ignore[no-untyped-def]
        return Text(_unquote(items[0]))

    def number(self, meta, items):  # type: ignore[no-untyped-def]
        value = float(str(items[0]))
        if not math.isfinite(value):
            raise _ProblemError(
                *_at(items[0]), f"the number {str(items[0])[:20]}... is out of range"
            )
        return Number(value)

    def group(self, meta, items):  # type: ignore[no-untyped-def]
        return items[0]

    def minus(self, meta, items):  # type: ignore[no-untyped-def]
        value = _value(items[1], meta.line, meta.column)
        return Number(-value.value) if isinstance(value, Number) else Negative(value)

    def sum(self, meta, items):  # type: ignore[no-untyped-def]
        total = _value(items[0], meta.line, meta.column)
        for op, right in zip(items[1::2], items[2::2], strict=True):
            total = Arithmetic(str(op), total, _value(right, *_at(op)))
        return total

    # conditions
    def comparison(self, meta, items):  # type: ignore[no-untyped-def]
        left, op, right = items
        return Compare(str(op), _value(left, meta.line, meta.column), _value(right, *_at(op)))

    def like(self, meta, items):  # type: ignore[no-untyped-def]
        operand, _like, pattern = items
        return Like(_value(operand, meta.line, meta.column), _unquote(pattern))

    def regexp(self, meta, items):  # type: ignore[no-untyped-def]
        operand, _regexp, pattern = items
        try:
            re.compile(_unquote(pattern))
        except re.error as err:
            raise _ProblemError(
                *_at(pattern), f"{pattern} is not a regular expression: {err}"
            ) from None
        return Regexp(_value(operand, meta.line, meta.column), _unquote(pattern))

    def type_test(self, meta, items):  # type: ignore[no-untyped-def]
        operand, _is, type_name = items
        return TypeTest(_value(operand, meta.line, meta.column), str(type_name))

    def between(self, meta, items):  # type: ignore[no-untyped-def]
        operand, word, low, _and, high = items
        line, column = _at(word)
        return Between(
            _value(operand, meta.line, meta.column),
            _value(low, line, column),
            _value(high, *_at(_and)),
            soft=str(word) == "tryBetween",
            where=f"{self.source}:{line}:{column}",
        )

    def truth_value(self, meta, items):  # type: ignore[no-untyped-def]
        item = items[0]
        return Truth(item) if isinstance(item, _VALUES) else item

    def negation(self, meta, items):  # type: ignore[no-untyped-def]
        return Not(items[-1])

    # Nested chains of the same operator are flattened: (a and b) and c == a and b and c.
    def and_expr(self, meta, items):  # type: ignore[no-untyped-def]
        return And(_flat(items, And))

    def or_expr(self, meta, items):  # type: ignore[no-untyped-def]
        return Or(_flat(items, Or))

    # statements
    def assignment(self, meta, items):  # type: ignore[no-untyped-def]
        value = items[1]
        # `KEY = "text";` assigns the value itself, not its truth.
        return Assignment(str(items[0]), value.operand if isinstance(value, Truth) else value)

    def classification(self, meta, items):  # type: ignore[no-untyped-def]
        _if, condition, _then, *assignments = items
        return Classification(condition, tuple(assignments), meta.line)

    def alias(self, meta, items):  # type: ignore[no-untyped-def]
        a, b = (str(t) for t in items if isinstance(t, Token) and t.type == "NAME")
        return (a, b)

    def group_by(self, meta, items):  # type: ignore[no-untyped-def]
        keys = tuple(str(t) for t in items if isinstance(t, Token) and t.type == "NAME")
        alias = next((t for t in items if isinstance(t, tuple)), None)
        return keys, alias

    def organisation(self, meta, items):  # type: ignore[no-untyped-def]
        names = [t for t in items if isinstance(t, Token) and t.type == "NAME"]
        action, source = names
        _check_source(source, RAW_SOURCES, "select execute")
        where = next(i for i, t in enumerate(items) if isinstance(t, Token) and t.type == "WHERE")
        condition = items[where + 1]
        group_by, alias = items[where + 2] if len(items) > where + 2 else ((), None)
        return Organisation(str(action), str(source), condition, group_by, alias, meta.line)

    def retention(self, meta, items):  # type: ignore[no-untyped-def]
        which, value = items
        return _Retention(str(which), int(str(value)), *_at(which))

    def association(self, meta, items):  # type: ignore[no-untyped-def]
        _select, _file, _as, tag, _from, source, _where, condition = items
        _check_source(source, RAW_SOURCES + CALIB_SOURCES, "select file")
        return _Select(str(tag), str(source), condition, meta.line)

    def recipe_params(self, meta, items):  # type: ignore[no-untyped-def]
        return tuple(_unquote(t) for t in items if isinstance(t, Token) and t.type == "STRING")

    def recipe(self, meta, items):  # type: ignore[no-untyped-def]
        name = items[1]
        params = items[2] if len(items) > 2 and isinstance(items[2], tuple) else ()
        return _Recipe(str(name), params, *_at(items[0]))

    def product(self, meta, items):  # type: ignore[no-untyped-def]
        _product, name, *assignments = items
        return Product(str(name), tuple(assignments))

    def priority(self, meta, items):  # type: ignore[no-untyped-def]
        return _Priority(int(str(items[-1])), *_at(items[0]))

    def action(self, meta, items):  # type: ignore[no-untyped-def]
        _action, name, *body = items
        return _action_from(str(name), body, meta.line)


def _flat(items: list[Any], kind: type[And] | type[Or]) -> tuple[Any, ...]:
    flat: list[Any] = []
    for item in items:
        if not isinstance(item, Token):
            flat.extend(item.items if isinstance(item, kind) else (item,))
    return tuple(flat)


def _check_source(token: Token, allowed: tuple[str, ...], statement: str) -> None:
    if str(token) not in allowed:
        raise _ProblemError(
            *_at(token),
            f"'{statement}' reads from {' or '.join(allowed)}, not {str(token)!r}",
        )


def _action_from(name: str, body: list, line: int) -> Action:  # type: ignore[type-arg]
    """An action: ``minRet``/``maxRet`` hold for every later ``select`` of the action."""
    min_ret, max_ret = 1, 1
    associations: list[Association] = []
    recipe: _Recipe | None = None
    products: list[Product] = []
    priority: _Priority | None = None
    for item in body:
        if isinstance(item, _Retention):
            if item.which == "minRet":
                min_ret = item.value
            else:
                max_ret = item.value
        elif isinstance(item, _Select):
            if 0 < max_ret < min_ret:
                raise _ProblemError(
                    item.line,
                    1,
                    f"action {name}: select file as {item.tag} has minRet = {min_ret} "
                    f"> maxRet = {max_ret}, so it can never be complete; fix one of them",
                )
            associations.append(
                Association(item.tag, item.source, item.condition, min_ret, max_ret, item.line)
            )
        elif isinstance(item, _Recipe):
            if recipe is not None:
                raise _ProblemError(
                    item.line,
                    item.column,
                    f"action {name} names a second recipe ({item.name}; the first, "
                    f"{recipe.name}, is on line {recipe.line}): one action runs one recipe",
                )
            recipe = item
        elif isinstance(item, Product):
            products.append(item)
        elif isinstance(item, _Priority):
            if priority is not None:
                raise _ProblemError(
                    item.line, item.column, f"action {name} gives its priority twice"
                )
            priority = item
    return Action(
        name,
        tuple(associations),
        recipe.name if recipe else None,
        recipe.parameters if recipe else (),
        tuple(products),
        priority.value if priority else None,
        line,
    )


# ------------------------------------------------------------------ error messages
_READABLE = {
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LPAR": "'('",
    "RPAR": "')'",
    "SEMICOLON": "';'",
    "EQUAL": "'='",
    "COMMA": "','",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "NAME": "a keyword or name",
    "STRING": 'a "string"',
    "NUMBER": "a number",
    "INT": "a whole number",
    "SIGNED_INT": "an integer",
    "COMPARE": "a comparison (==, !=, <...)",
    "TYPE_NAME": "string, number or undefined",
    "RETENTION": "minRet or maxRet",
    "BETWEEN": "between or tryBetween",
}
_WORDS = {
    "if", "then", "select", "execute", "from", "where", "group", "by", "as", "action",
    "file", "recipe", "product", "priority", "and", "or", "not", "like", "regexp", "is",
    "between",
}  # fmt: skip


def _readable(terminal: str) -> str:
    return _READABLE.get(terminal, terminal.lower())


def _at_end(err: UnexpectedInput) -> bool:
    token = getattr(err, "token", None)
    return isinstance(err, UnexpectedEOF) or (token is not None and token.type == "$END")


def _bad_character(text: str, position: int) -> str:
    char = text[position] if position < len(text) else "?"
    if text.startswith("/*", position):
        return "unterminated /* comment: close it with */"
    if char == '"':
        return 'unterminated string: a "string" ends on the line it starts'
    if char == "'":
        return 'unexpected character "\'": OCA strings are in double quotes'
    if char == "#":
        return (
            "unexpected character '#': OCA comments are // and /* */; '#include' and "
            "'#define' lines are C-preprocessor directives (DFOS rule sources): "
            "run the file through `cpp -P` first"
        )
    return f"unexpected character {char!r}"


def _describe(err: UnexpectedInput, text: str) -> str:
    if _at_end(err):
        return "unexpected end of file (a missing '}' or ';'?)"
    if isinstance(err, UnexpectedCharacters):
        return _bad_character(text, err.pos_in_stream or 0)
    token = getattr(err, "token", None)
    if token is not None and str(token).lower() in _WORDS and str(token) != str(token).lower():
        return (
            f"unexpected {str(token)!r}: OCA's words are lower case, write {str(token).lower()!r}"
        )
    expected = sorted(_readable(t) for t in (getattr(err, "expected", None) or []))
    shown = ", ".join(expected[:6]) + (" ..." if len(expected) > 6 else "")
    return f"unexpected {str(token)!r}" + (f"; expected {shown}" if shown else "")


def _syntax_error(err: UnexpectedInput, text: str, source: str) -> OCASyntaxError:
    line = getattr(err, "line", None) or text.count("\n") + 1
    column = getattr(err, "column", None) or 1
    if _at_end(err):
        line, column = text.count("\n") + 1, len(text.rsplit("\n", 1)[-1]) + 1
    return OCASyntaxError(source, int(line), int(column), _describe(err, text))


# ------------------------------------------------------------------ parse
def _build(statement: Tree[Token], build: _Build, source: str) -> object:
    try:
        return build.transform(statement)
    except VisitError as err:
        if isinstance(err.orig_exc, _ProblemError):
            problem = err.orig_exc
            raise OCASyntaxError(source, problem.line, problem.column, problem.message) from None
        if isinstance(err.orig_exc, RecursionError):
            line, column = _at(statement)
            raise OCASyntaxError(
                source, line, column, "this statement is nested too deeply to read"
            ) from None
        raise  # pragma: no cover - a programming error
    except RecursionError:
        line, column = _at(statement)
        raise OCASyntaxError(
            source, line, column, "this statement is nested too deeply to read"
        ) from None


def parse_oca(text: str, source: str = "<rules>") -> RuleSet:
    """Parse the text of an OCA rule file.

    Raises
    ------
    OCASyntaxError
        With the source name, line and column of the first error: text that is not
        OCA, or OCA that cannot mean anything (a second recipe in one action, a
        ``select`` from an unknown file set, ``minRet`` above ``maxRet``, an invalid
        ``regexp``...).
    """
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as err:
        raise _syntax_error(err, text, source) from None
    build = _Build(source)
    classifications, organisations, actions = [], [], []
    pending: _Retention | None = None  # a `minRet = n;` waiting for its `select execute`
    for statement in tree.children:
        assert isinstance(statement, Tree)  # every statement is a rule, never a bare token
        node = _build(statement, build, source)
        if pending is not None and not isinstance(node, Organisation | _Retention):
            raise OCASyntaxError(
                source,
                pending.line,
                pending.column,
                "minRet outside an action must come right before the 'select execute' "
                "whose groups it sizes",
            )
        if isinstance(node, _Retention):
            if node.which == "maxRet":
                raise OCASyntaxError(
                    source,
                    node.line,
                    node.column,
                    "maxRet outside an action: a group of input files has no upper size; "
                    "put maxRet inside an action, before its 'select file'",
                )
            pending = node
        elif isinstance(node, Organisation):
            if pending is not None:
                node = Organisation(
                    node.action,
                    node.source,
                    node.condition,
                    node.group_by,
                    node.alias,
                    node.line,
                    min_files=pending.value,
                )
                pending = None
            organisations.append(node)
        elif isinstance(node, Classification):
            classifications.append(node)
        elif isinstance(node, Action):
            actions.append(node)
    if pending is not None:
        raise OCASyntaxError(
            source,
            pending.line,
            pending.column,
            "minRet at the end of the file: it must come right before a 'select execute'",
        )
    return RuleSet(source, tuple(classifications), tuple(organisations), tuple(actions))
