"""EPICS record names for the simulated motors: validation and caproto-safe prefixes."""

from __future__ import annotations

__all__ = ["RECORD_NAME_MAX", "check_record_name", "literal_prefix"]

#: EPICS base (dbRecordNameValidate) refuses these characters in record names; everything
#: else printable is legal, braces included (common in NSLS-II names such as
#: ``XF:31IDA-OP{Tbl-Ax:X1}Mtr``).  "." separates the field name, "$" starts a macro.
_BAD_RECORD_NAME_CHARS = frozenset(" \t\"'.$")
#: PVNAME_STRINGSZ (61) minus the terminating NUL.
RECORD_NAME_MAX = 60


def check_record_name(name: str) -> str:
    """Return ``name`` if it is a legal EPICS record name, else raise ValueError saying why."""
    if not isinstance(name, str) or not name:
        raise ValueError("a record name must be a non-empty string")
    bad = sorted({c for c in name if c in _BAD_RECORD_NAME_CHARS or not " " < c <= "~"})
    if bad:
        raise ValueError(f"record name {name!r}: characters {bad!r} are not allowed")
    if len(name) > RECORD_NAME_MAX:
        raise ValueError(f"record name {name!r} is longer than {RECORD_NAME_MAX} characters")
    return name


def literal_prefix(prefix: str) -> str:
    """``prefix`` escaped for caproto's PVGroup, which expands ``{macros}`` with str.format."""
    return prefix.replace("{", "{{").replace("}", "}}")
