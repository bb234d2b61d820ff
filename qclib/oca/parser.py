"""Parse OCA rule text with a real grammar (lark, LALR): never ``eval``.

>>> rules = parse_oca('if DPR.TYPE like "%BIAS%" then { DO.CATG = "BIAS"; }')
>>> rules.counts()["classification"]
1
"""

from __future__ import annotations

import functools
from pathlib import Path

from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput
from lark.exceptions import VisitError

from qclib.errors import ConfigError
from qclib.oca.rules import (
    INPUT_PREFIX,
    Action,
    And,
    Assignment,
    Association,
    Classification,
    Compare,
    Keyword,
    Like,
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


class OCASyntaxError(ConfigError):
    """A rule file does not parse; names file, line and column."""

    def __init__(self, source: str, line: int, column: int, message: str) -> None:
        super().__init__(f"{source}:{line}:{column}: {message}")
        self.source = source
        self.line = line
        self.column = column
        self.message = message


@functools.cache
def _parser() -> Lark:
    return Lark(
        _GRAMMAR.read_text(),
        parser="lalr",
        propagate_positions=True,
    )


def _keyword(name: str) -> Keyword:
    if name.startswith(INPUT_PREFIX):
        return Keyword(name[len(INPUT_PREFIX) :], of_input=True)
    return Keyword(name)


class _Build(Transformer):
    """Turns the lark tree into the dataclasses of ``qclib.oca.rules``."""

    def start(self, items):  # type: ignore[no-untyped-def]
        return items

    # operands and expressions
    def keyword(self, items):  # type: ignore[no-untyped-def]
        return _keyword(str(items[0]))

    def string(self, items):  # type: ignore[no-untyped-def]
        return Text(str(items[0])[1:-1])

    def number(self, items):  # type: ignore[no-untyped-def]
        return Number(float(str(items[0])))

    def comparison(self, items):  # type: ignore[no-untyped-def]
        left, op, right = items
        return Compare(str(op), left, right)

    def like(self, items):  # type: ignore[no-untyped-def]
        operand, _like, pattern = items
        return Like(operand, str(pattern)[1:-1])

    def regexp(self, items):  # type: ignore[no-untyped-def]
        operand, _regexp, pattern = items
        return Regexp(operand, str(pattern)[1:-1])

    def type_test(self, items):  # type: ignore[no-untyped-def]
        operand, _is, type_name = items
        return TypeTest(operand, str(type_name))

    def truth_value(self, items):  # type: ignore[no-untyped-def]
        return Truth(items[0])

    def negation(self, items):  # type: ignore[no-untyped-def]
        return Not(items[-1])

    # Nested chains of the same operator are flattened: (a and b) and c == a and b and c.
    def and_expr(self, items):  # type: ignore[no-untyped-def]
        flat: list = []
        for item in items:
            if not isinstance(item, Token):
                flat.extend(item.items if isinstance(item, And) else (item,))
        return And(tuple(flat))

    def or_expr(self, items):  # type: ignore[no-untyped-def]
        flat: list = []
        for item in items:
            if not isinstance(item, Token):
                flat.extend(item.items if isinstance(item, Or) else (item,))
        return Or(tuple(flat))

    # statements
    def assignment(self, items):  # type: ignore[no-untyped-def]
        value = items[1]
        # `KEY = "text";` assigns the value itself, not its truth.
        return Assignment(str(items[0]), value.operand if isinstance(value, Truth) else value)


def _statement(tree) -> object:  # type: ignore[no-untyped-def]
    """Build one statement node (classification, organisation, action)."""
    build = _Build()
    kind = tree.data
    line = tree.meta.line if hasattr(tree.meta, "line") else 0
    children = [build.transform(c) if hasattr(c, "data") else c for c in tree.children]
    if kind == "classification":
        _if, condition, _then, *assignments = children
        return Classification(condition, tuple(assignments), line)
    if kind == "organisation":
        names = [c for c in children if isinstance(c, Token) and c.type == "NAME"]
        condition = next(c for c in children if not isinstance(c, Token) and not _is_group(c))
        group = next((c for c in children if _is_group(c)), None)
        group_by: tuple[str, ...] = ()
        alias = None
        if group is not None:
            keys = [str(t) for t in group.children if isinstance(t, Token) and t.type == "NAME"]
            group_by = tuple(keys)
            alias_tree = next(
                (t for t in group.children if getattr(t, "data", None) == "alias"), None
            )
            if alias_tree is not None:
                a, b = (str(t) for t in alias_tree.children if t.type == "NAME")
                alias = (a, b)
        return Organisation(str(names[0]), str(names[1]), condition, group_by, alias, line)
    if kind == "retention":
        return None
    if kind == "action":
        name = str(next(c for c in children if isinstance(c, Token) and c.type == "NAME"))
        return _action(name, [c for c in tree.children if hasattr(c, "data")], line, build)
    raise AssertionError(f"unexpected statement {kind}")  # pragma: no cover


def _is_group(node: object) -> bool:
    return getattr(node, "data", None) == "group_by"


def _action(name: str, items: list, line: int, build: _Build) -> Action:  # type: ignore[type-arg]
    min_ret, max_ret = 1, 1
    associations: list[Association] = []
    recipe: str | None = None
    parameters: tuple[str, ...] = ()
    products: list[Product] = []
    priority: int | None = None
    for item in items:
        kind = item.data
        tokens = [c for c in item.children if isinstance(c, Token)]
        if kind == "retention":
            which, value = str(tokens[0]), int(str(tokens[1]))
            if which == "minRet":
                min_ret = value
            else:
                max_ret = value
        elif kind == "association":
            names = [str(t) for t in tokens if t.type == "NAME"]
            condition = build.transform(next(c for c in item.children if hasattr(c, "data")))
            associations.append(
                Association(names[0], names[1], condition, min_ret, max_ret, item.meta.line)
            )
        elif kind == "recipe":
            recipe = str(next(t for t in tokens if t.type == "NAME"))
            params = next((c for c in item.children if hasattr(c, "data")), None)
            if params is not None:
                parameters = tuple(str(t)[1:-1] for t in params.children if t.type == "STRING")
        elif kind == "product":
            pname = str(next(t for t in tokens if t.type == "NAME"))
            assignments = tuple(build.transform(c) for c in item.children if hasattr(c, "data"))
            products.append(Product(pname, assignments))
        elif kind == "priority":
            priority = int(str(tokens[-1]))
    return Action(name, tuple(associations), recipe, parameters, tuple(products), priority, line)


_READABLE = {
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LPAR": "'('",
    "RPAR": "')'",
    "SEMICOLON": "';'",
    "EQUAL": "'='",
    "COMMA": "','",
    "NAME": "a keyword or name",
    "STRING": 'a "string"',
    "NUMBER": "a number",
    "SIGNED_INT": "an integer",
    "COMPARE": "a comparison (==, !=, <...)",
}


def _readable(terminal: str) -> str:
    return _READABLE.get(terminal, terminal.lower())


def _at_end(err: UnexpectedInput) -> bool:
    token = getattr(err, "token", None)
    return isinstance(err, UnexpectedEOF) or (token is not None and token.type == "$END")


def _describe(err: UnexpectedInput, text: str) -> str:
    if _at_end(err):
        return "unexpected end of file (a missing '}' or ';'?)"
    if isinstance(err, UnexpectedCharacters):
        position = err.pos_in_stream or 0
        char = text[position] if position < len(text) else "?"
        return f"unexpected character {char!r}"
    token = getattr(err, "token", None)
    expected = sorted(_readable(t) for t in (getattr(err, "expected", None) or []))
    shown = ", ".join(expected[:6]) + (" ..." if len(expected) > 6 else "")
    return f"unexpected {str(token)!r}" + (f"; expected {shown}" if shown else "")


def parse_oca(text: str, source: str = "<rules>") -> RuleSet:
    """Parse the text of an OCA rule file.

    Raises
    ------
    OCASyntaxError
        With the source name, line and column of the first error.
    """
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as err:
        line = getattr(err, "line", None) or text.count("\n") + 1
        column = getattr(err, "column", None) or 1
        if _at_end(err):
            line, column = text.count("\n") + 1, len(text.rsplit("\n", 1)[-1]) + 1
        raise OCASyntaxError(source, int(line), int(column), _describe(err, text)) from None
    classifications, organisations, actions = [], [], []
    try:
        for statement in tree.children:
            node = _statement(statement)
            if isinstance(node, Classification):
                classifications.append(node)
            elif isinstance(node, Organisation):
                organisations.append(node)
            elif isinstance(node, Action):
                actions.append(node)
    except VisitError as err:  # pragma: no cover - the grammar admits only valid shapes
        raise OCASyntaxError(source, 1, 1, str(err.orig_exc)) from None
    return RuleSet(source, tuple(classifications), tuple(organisations), tuple(actions))
