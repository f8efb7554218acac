"""One-line text for line-oriented files (SPEC): nothing a reader splits on survives.

SPEC readers (spec2nexus, silx, PyMca) split with ``str.splitlines()``, which breaks on more
than ``\\n`` and ``\\r``: also ``\\x0b \\x0c \\x1c \\x1d \\x1e \\x85 U+2028 U+2029``.  One such
character in a metadata value would start a new "line" such as ``#S 999`` and make every
scan of the file unreadable.  Every string written to the SPEC file goes through
:func:`one_line`.
"""

from __future__ import annotations

import re

#: Every character ``str.splitlines()`` splits on, plus NUL and the other C0/C1 controls
#: (a NUL ends a C string in silx's reader; other controls are invisible in a text file).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SPACES = re.compile(r"\s{2,}")


def one_line(text: object, limit: int | None = None) -> str:
    """``str(text)`` as exactly one line: unsafe characters become spaces, capped at ``limit``.

    A tab is kept as a space too (SPEC columns are space separated).  With ``limit``, a longer
    text ends in ``...`` and has exactly ``limit`` characters.
    """
    out = _UNSAFE.sub(" ", str(text))
    out = out.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate cannot be written
    if limit is not None and len(out) > limit:
        out = out[: max(limit - 3, 0)] + "..."
    return out


def one_label(text: object) -> str:
    """A column or positioner name for ``#L``/``#O``: one line, no double space (the separator)."""
    return _SPACES.sub(" ", one_line(text)).strip()


def is_one_line(text: str) -> bool:
    """True if ``text`` is one line for ``str.splitlines()`` and holds no control character."""
    return not _UNSAFE.search(text) and len((text + "x").splitlines()) == 1
