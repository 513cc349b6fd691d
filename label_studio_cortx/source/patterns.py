"""User-supplied regular expressions (storage filters), run in linear time with Google RE2.

Python's ``re`` backtracks: ``(k+)+$`` against a 1,000-character key never finishes and freezes the
worker that runs it. RE2 guarantees time linear in the key's length, at the price of the constructs that
need backtracking (backreferences, lookaround, possessive and atomic groups); those are refused with a
message that names the construct. Matching keeps Label Studio's semantics: the pattern must match at
the start of the key (``re.match``), not necessarily the whole key.

Imports: ``re2`` and the standard library only.
"""

from __future__ import annotations

import functools
import re

import re2

# A filter is a short expression; this bounds the cost of compiling and of classifying a refusal.
MAX_PATTERN_LENGTH = 1000
# RE2's memory budget for one compiled program; a pattern that needs more is refused.
MAX_PROGRAM_MEMORY = 8 * 1024 * 1024

HELP_TEXT = (
    "Regular expression (RE2 syntax) that object keys must match from their start, e.g. .*\\.(jpe?g|png)$ "
    "(Label Studio's semantics). Backreferences and lookahead/lookbehind are not supported."
)


class PatternError(ValueError):
    """A pattern that cannot be used as a filter; ``str()`` says why, for the user."""


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # refusals are reported to the user, not printed to the server's stderr
    options.max_mem = MAX_PROGRAM_MEMORY
    return options


_LOOKAROUND = {
    (True, True): "a lookahead (?=...)",
    (False, True): "a negative lookahead (?!...)",
    (True, False): "a lookbehind (?<=...)",
    (False, False): "a negative lookbehind (?<!...)",
}


def _unsupported_construct(pattern: str) -> str | None:
    """Name the backtracking construct in ``pattern`` that RE2 cannot run, if Python's parser finds one."""
    try:
        from re import _parser as sre_parse  # Python 3.11+
    except ImportError:  # pragma: no cover - Python 3.10
        import sre_parse  # type: ignore[no-redef]
    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return None
    names = {
        "GROUPREF": "a backreference (\\1 or (?P=name))",
        "GROUPREF_EXISTS": "a conditional group (?(1)...)",
        "ATOMIC_GROUP": "an atomic group (?>...)",
        "POSSESSIVE_REPEAT": "a possessive quantifier (*+, ++, ?+)",
    }
    stack = [parsed]
    while stack:
        item = stack.pop()
        for op, arg in getattr(item, "data", item):
            name = str(op)
            if name in names:
                return names[name]
            if name in ("ASSERT", "ASSERT_NOT"):
                direction, _ = arg
                return _LOOKAROUND[(name == "ASSERT", direction == 1)]
            for value in arg if isinstance(arg, (list, tuple)) else (arg,):
                if isinstance(value, sre_parse.SubPattern):
                    stack.append(value)
                elif isinstance(value, (list, tuple)):
                    stack.extend(v for v in value if isinstance(v, sre_parse.SubPattern))
    return None


@functools.lru_cache(maxsize=256)
def compile_filter(pattern: str):
    """The compiled RE2 program for a storage filter; PatternError naming what is wrong otherwise."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"The filter regex is longer than {MAX_PATTERN_LENGTH} characters.")
    try:
        return re2.compile(pattern, options=_options())
    except re2.error as exc:
        construct = _unsupported_construct(pattern)
        if construct:
            raise PatternError(
                f"The filter regex uses {construct}, which the linear-time regex engine (RE2) does not support. "
                "Rewrite the pattern without it."
            ) from None
        detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise PatternError(f"The filter regex is invalid: {detail[:200]}.") from None


def validate(pattern: str | None) -> str | None:
    """A filter as typed by a user: returned unchanged when usable, else PatternError."""
    if pattern:
        compile_filter(pattern)
    return pattern


def matcher(pattern: str | None):
    """A predicate ``key -> bool`` with Label Studio's semantics (match at the start); everything when empty."""
    if not pattern:
        return lambda key: True
    program = compile_filter(pattern)
    return lambda key: program.match(key) is not None
