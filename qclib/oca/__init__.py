"""ESO's OCA rule language: grammar, parser, evaluator. Pure (takes text, returns values)."""

from qclib.oca.evaluate import OCAEvaluationError
from qclib.oca.parser import OCASyntaxError, parse_oca
from qclib.oca.rules import RuleSet

__all__ = ["OCAEvaluationError", "OCASyntaxError", "RuleSet", "parse_oca"]
