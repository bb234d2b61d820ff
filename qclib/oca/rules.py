"""The parsed form of an OCA rule file: expressions and the three kinds of statement.

Frozen dataclasses; ``to_oca()`` writes each back as OCA text, so a parsed file
can be printed, and parsing the print gives the same rules (property-tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field

INPUT_PREFIX = "inputFile."
RAW_SOURCES = ("inputFiles", "rawFiles")
CALIB_SOURCES = ("calibFiles",)


def _quote(value: str) -> str:
    return f'"{value}"'


def _number(value: float) -> str:
    return repr(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)


# ------------------------------------------------------------------ expressions
@dataclass(frozen=True)
class Keyword:
    """A header keyword, flattened (``DPR.CATG``); ``of_input`` for ``inputFile.X``."""

    name: str
    of_input: bool = False

    def to_oca(self) -> str:
        return f"{INPUT_PREFIX}{self.name}" if self.of_input else self.name


@dataclass(frozen=True)
class Text:
    value: str

    def to_oca(self) -> str:
        return _quote(self.value)


@dataclass(frozen=True)
class Number:
    value: float

    def to_oca(self) -> str:
        return _number(self.value)


@dataclass(frozen=True)
class Boolean:
    """The logical constants ``T`` and ``F`` (FITS spelling): ``if (T) then {...}``."""

    value: bool

    def to_oca(self) -> str:
        return "T" if self.value else "F"


@dataclass(frozen=True)
class Arithmetic:
    """``left + right`` or ``left - right`` on numbers (``inputFile.MJD-OBS - 14.0``)."""

    op: str
    left: Value
    right: Value

    def to_oca(self) -> str:
        right = self.right.to_oca()
        if isinstance(self.right, Arithmetic):
            right = f"({right})"
        return f"{self.left.to_oca()} {self.op} {right}"


@dataclass(frozen=True)
class Negative:
    """``-operand`` (a minus before a number literal is folded into the number)."""

    operand: Value

    def to_oca(self) -> str:
        inner = self.operand.to_oca()
        return f"-({inner})" if isinstance(self.operand, Arithmetic) else f"-{inner}"


Operand = Keyword | Text | Number | Boolean
Value = Keyword | Text | Number | Boolean | Arithmetic | Negative


@dataclass(frozen=True)
class Compare:
    """``left OP right`` with OP one of == != ?= < > <= >=."""

    op: str
    left: Value
    right: Value

    def to_oca(self) -> str:
        return f"{self.left.to_oca()} {self.op} {self.right.to_oca()}"


@dataclass(frozen=True)
class Like:
    """``operand like "pattern"``: SQL-style, ``%`` any run, ``_`` one character."""

    operand: Value
    pattern: str

    def to_oca(self) -> str:
        return f"{self.operand.to_oca()} like {_quote(self.pattern)}"


@dataclass(frozen=True)
class Regexp:
    """``operand regexp "pattern"``: a regular expression searched in the value."""

    operand: Value
    pattern: str

    def to_oca(self) -> str:
        return f"{self.operand.to_oca()} regexp {_quote(self.pattern)}"


TYPE_NAMES = ("string", "number", "undefined")


@dataclass(frozen=True)
class TypeTest:
    """``operand is string`` / ``is number``: present with that type; ``is undefined``: absent."""

    operand: Value
    type_name: str

    def to_oca(self) -> str:
        return f"{self.operand.to_oca()} is {self.type_name}"


@dataclass(frozen=True)
class Between:
    """``operand between low and high`` (both ends included).

    ``tryBetween`` (``soft``) is calSelector's preference: the window applies only if
    some candidate falls in it, a judgement over all candidates together, which a
    per-file evaluation cannot make; ``where`` (file:line:column) is for that error.
    """

    operand: Value
    low: Value
    high: Value
    soft: bool = False
    where: str = field(default="", compare=False)

    def to_oca(self) -> str:
        word = "tryBetween" if self.soft else "between"
        return f"{self.operand.to_oca()} {word} {self.low.to_oca()} and {self.high.to_oca()}"


@dataclass(frozen=True)
class Truth:
    """A bare value used as a condition (true when set and true: ``T``, non-zero...)."""

    operand: Value

    def to_oca(self) -> str:
        return self.operand.to_oca()


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]

    def to_oca(self) -> str:
        return " and ".join(_group(item, And) for item in self.items)


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]

    def to_oca(self) -> str:
        return " or ".join(_group(item, Or) for item in self.items)


@dataclass(frozen=True)
class Not:
    item: Expr

    def to_oca(self) -> str:
        inner = self.item.to_oca()
        return f"not {inner}" if isinstance(self.item, Truth | Not) else f"not ({inner})"


Condition = Compare | Like | Regexp | TypeTest | Between | Truth | And | Or | Not
Expr = Condition | Value


def _group(item: Expr, parent: type) -> str:
    text = item.to_oca()
    if isinstance(item, And | Or) and not isinstance(item, parent):
        return f"({text})"
    return text


def keywords_in(expr: Expr) -> set[Keyword]:
    """Every keyword an expression reads."""
    if isinstance(expr, Keyword):
        return {expr}
    if isinstance(expr, Compare | Arithmetic):
        return keywords_in(expr.left) | keywords_in(expr.right)
    if isinstance(expr, Between):
        return keywords_in(expr.operand) | keywords_in(expr.low) | keywords_in(expr.high)
    if isinstance(expr, Like | Regexp | TypeTest | Truth | Negative):
        return keywords_in(expr.operand)
    if isinstance(expr, And | Or):
        return set().union(*(keywords_in(i) for i in expr.items))
    if isinstance(expr, Not):
        return keywords_in(expr.item)
    return set()


def required_values(expr: Expr, keyword: str) -> set[str]:
    """Values ``expr`` requires ``keyword`` to equal (``K == "v"`` in an ``and`` chain).

    Used to learn which category a calibration selection asks for:
    ``required_values(cond, "PRO.CATG") == {"MASTER_BIAS"}``.
    """
    if isinstance(expr, Compare) and expr.op == "==":
        for a, b in ((expr.left, expr.right), (expr.right, expr.left)):
            if (
                isinstance(a, Keyword)
                and not a.of_input
                and a.name == keyword
                and isinstance(b, Text)
            ):
                return {b.value}
    if isinstance(expr, And):
        return set().union(*(required_values(i, keyword) for i in expr.items))
    if isinstance(expr, Or):
        sets = [required_values(i, keyword) for i in expr.items]
        return set().union(*sets) if all(sets) else set()
    return set()


# ------------------------------------------------------------------ statements
@dataclass(frozen=True)
class Assignment:
    keyword: str
    value: Expr

    def to_oca(self) -> str:
        return f"{self.keyword} = {self.value.to_oca()};"


@dataclass(frozen=True)
class Classification:
    """``if CONDITION then { KEY = VALUE; ... }``."""

    condition: Expr
    assignments: tuple[Assignment, ...]
    line: int = field(default=0, compare=False)

    def assigned(self, keyword: str) -> Expr | None:
        for assignment in self.assignments:
            if assignment.keyword == keyword:
                return assignment.value
        return None

    def to_oca(self) -> str:
        body = "\n".join(f"  {a.to_oca()}" for a in self.assignments)
        return f"if {self.condition.to_oca()} then\n{{\n{body}\n}}"


@dataclass(frozen=True)
class Organisation:
    """``[minRet = n;] select execute(ACTION) from SOURCE where CONDITION group by K, ...
    as (A, B);``: ``min_files`` (the ``minRet`` before it) is the least number of files
    a group needs to become a block."""

    action: str
    source: str
    condition: Expr
    group_by: tuple[str, ...] = ()
    alias: tuple[str, str] | None = None
    line: int = field(default=0, compare=False)
    min_files: int = 1

    def to_oca(self) -> str:
        text = f"minRet = {self.min_files};\n" if self.min_files != 1 else ""
        text += f"select execute({self.action}) from {self.source} where {self.condition.to_oca()}"
        if self.group_by:
            text += " group by " + ",".join(self.group_by)
            if self.alias:
                text += f" as ({self.alias[0]},{self.alias[1]})"
        return text + ";"


@dataclass(frozen=True)
class Association:
    """``minRet=m; maxRet=n; select file as TAG from SOURCE where CONDITION;``.

    At least ``min_ret`` and at most ``max_ret`` files; ``maxRet = 0`` sets no upper
    limit. ESO's muse.oca needs that reading: its ``muse_geometry`` asks for
    ``minRet = 1`` LINE_CATALOG under ``maxRet = 0`` (line 781), which "at most none"
    would make impossible; giraf.oca and vimos.oca use ``minRet = 0; maxRet = 0`` for
    optional inputs (bad-pixel maps, master darks).
    """

    tag: str
    source: str
    condition: Expr
    min_ret: int = 1
    max_ret: int = 1
    line: int = field(default=0, compare=False)

    @property
    def mandatory(self) -> bool:
        return self.min_ret > 0

    @property
    def limit(self) -> int | None:
        """The most files to choose; None for no limit (``maxRet = 0``)."""
        return self.max_ret if self.max_ret > 0 else None

    @property
    def selects_raw(self) -> bool:
        """True for ``from inputFiles`` / ``from rawFiles`` (raw frames), False for
        ``from calibFiles`` (products)."""
        return self.source in RAW_SOURCES

    def to_oca(self) -> str:
        return (
            f"  minRet = {self.min_ret}; maxRet = {self.max_ret};\n"
            f"  select file as {self.tag} from {self.source} where {self.condition.to_oca()};"
        )


@dataclass(frozen=True)
class Product:
    name: str
    assignments: tuple[Assignment, ...]

    @property
    def pro_catg(self) -> str | None:
        for a in self.assignments:
            if a.keyword == "PRO.CATG" and isinstance(a.value, Text):
                return a.value.value
        return None

    def to_oca(self) -> str:
        body = " ".join(a.to_oca() for a in self.assignments)
        return f"  product {self.name} {{ {body} }}"


@dataclass(frozen=True)
class Action:
    """``action NAME { associations; recipe R; products; priority }``."""

    name: str
    associations: tuple[Association, ...] = ()
    recipe: str | None = None
    recipe_parameters: tuple[str, ...] = ()
    products: tuple[Product, ...] = ()
    priority: int | None = None
    line: int = field(default=0, compare=False)

    def to_oca(self) -> str:
        parts = [a.to_oca() for a in self.associations]
        if self.recipe:
            params = ""
            if self.recipe_parameters:
                params = " { " + " ".join(f"{_quote(p)};" for p in self.recipe_parameters) + " }"
            parts.append(f"  recipe {self.recipe}{params};")
        parts += [p.to_oca() for p in self.products]
        if self.priority is not None:
            parts.append(f"  priority = {self.priority};")
        return f"action {self.name}\n{{\n" + "\n".join(parts) + "\n}"


@dataclass(frozen=True)
class RuleSet:
    """All rules of one OCA file, in file order."""

    source: str
    classifications: tuple[Classification, ...] = ()
    organisations: tuple[Organisation, ...] = ()
    actions: tuple[Action, ...] = ()

    def action(self, name: str) -> Action | None:
        return next((a for a in self.actions if a.name == name), None)

    def counts(self) -> dict[str, int]:
        return {
            "classification": len(self.classifications),
            "organisation": len(self.organisations),
            "association": sum(len(a.associations) for a in self.actions),
            "actions": len(self.actions),
        }

    def to_oca(self) -> str:
        blocks = [c.to_oca() for c in self.classifications]
        blocks += [o.to_oca() for o in self.organisations]
        blocks += [a.to_oca() for a in self.actions]
        return "\n\n".join(blocks) + "\n"
