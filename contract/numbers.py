"""The one reader of numbers that come from outside: headers, versions (a REST path or query, a gRPC
field, a repository folder's name).

Python's `int()` is lenient where a protocol must not be: it reads "1_0" as 10, " 1", "+1" and
"١" (Arabic-Indic one) as 1, and `str.isdigit()` accepts "²", which `int()` then refuses with a
ValueError that would become a 500. Here a number is ASCII digits and nothing else. The readers
return None for anything else; the caller names the field in its error.
"""

from __future__ import annotations

import re

MAX_VERSION = 999_999_999
VERSION_RULE = f"a whole number from 1 to {MAX_VERSION}, in digits 0-9 without a leading zero"
_COUNT = re.compile(r"[0-9]{1,18}", re.ASCII)
_VERSION = re.compile(r"[1-9][0-9]{0,8}", re.ASCII)


def read_count(text: str) -> int | None:
    """A whole number of something (bytes, rows): ASCII digits only."""
    return int(text) if _COUNT.fullmatch(text) else None


def read_version(text: str) -> int | None:
    """A version number: 1 to 999999999 in ASCII digits, no leading zero (so that "01" and "1"
    are not two names of one version)."""
    return int(text) if _VERSION.fullmatch(text) else None
