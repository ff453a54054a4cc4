"""Real text pairs nobody here wrote: (docstring line, qualified name + signature) from the Python stdlib.

A small code-search task on every machine with Python, no download: the query is the first line of a
public function's, class's or method's docstring, the candidate is its qualified name and signature, e.g.

    query  "Return True if x is a NaN (not a number), and False otherwise."
    code   "math.isnan(x, /)"

The modules are a fixed, sorted list (:data:`STDLIB_MODULES`) and every step is deterministic: names are
visited in sorted order, then a seeded shuffle picks the pairs and splits them. Docstrings differ slightly
between Python versions, so the exact texts (and which pairs are drawn) do too; counts stay close.

What is skipped, and why:

- private names (leading ``_``) and objects re-exported from another module (each pair appears once);
- functions other libraries replace on import (:data:`_REPLACED_AT_RUNTIME`; ``torch`` patches
  ``inspect.getfile``), so the pairs do not depend on what was imported first;
- empty docstrings, first lines under three words and doctest lines (``>>> …``): no description to match;
- every pair whose docstring line occurs more than once (``"Emit a record."`` on eleven logging
  handlers): as in-batch negatives they would be false negatives with the same text as the positive;
- default values whose repr is not a Python literal (``<object object at 0x…>``, the live handler list
  of ``logging.shutdown``) are written ``...``, so the text is the same in every process.

Example:
    >>> pairs = stdlib_pairs(max_pairs=50)
    >>> len(pairs), len({p.query for p in pairs})
    (50, 50)
    >>> train, held_out = split_pairs(pairs, held_out=10)
    >>> len(train), len(held_out)
    (40, 10)
"""

from __future__ import annotations

import ast
import importlib
import inspect
import random
import re
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["STDLIB_MODULES", "TextPair", "split_pairs", "stdlib_pairs"]

STDLIB_MODULES: tuple[str, ...] = tuple(
    sorted(
        [
            "abc",
            "argparse",
            "ast",
            "asyncio",
            "base64",
            "bisect",
            "bz2",
            "calendar",
            "cmath",
            "codecs",
            "collections",
            "colorsys",
            "concurrent.futures",
            "configparser",
            "contextlib",
            "copy",
            "csv",
            "dataclasses",
            "datetime",
            "decimal",
            "difflib",
            "dis",
            "email.message",
            "email.utils",
            "enum",
            "filecmp",
            "fileinput",
            "fnmatch",
            "fractions",
            "ftplib",
            "functools",
            "gettext",
            "glob",
            "gzip",
            "hashlib",
            "heapq",
            "hmac",
            "html",
            "html.parser",
            "http.client",
            "http.cookies",
            "imaplib",
            "inspect",
            "io",
            "ipaddress",
            "itertools",
            "json",
            "keyword",
            "linecache",
            "locale",
            "logging",
            "logging.handlers",
            "lzma",
            "mailbox",
            "math",
            "mimetypes",
            "multiprocessing.pool",
            "netrc",
            "numbers",
            "operator",
            "optparse",
            "os",
            "pathlib",
            "pickle",
            "pickletools",
            "pkgutil",
            "platform",
            "plistlib",
            "poplib",
            "pprint",
            "profile",
            "pstats",
            "queue",
            "quopri",
            "random",
            "re",
            "reprlib",
            "runpy",
            "sched",
            "secrets",
            "selectors",
            "shelve",
            "shlex",
            "shutil",
            "signal",
            "smtplib",
            "socket",
            "socketserver",
            "sqlite3",
            "ssl",
            "stat",
            "statistics",
            "string",
            "struct",
            "subprocess",
            "symtable",
            "sysconfig",
            "tarfile",
            "tempfile",
            "textwrap",
            "threading",
            "time",
            "timeit",
            "token",
            "tokenize",
            "trace",
            "traceback",
            "types",
            "unittest",
            "unittest.mock",
            "urllib.parse",
            "urllib.request",
            "uuid",
            "warnings",
            "weakref",
            "wave",
            "xml.dom.minidom",
            "xml.etree.ElementTree",
            "zipfile",
            "zlib",
            "zoneinfo",
        ]
    )
)
"""Standard-library modules the pairs come from: pure imports (no windows, sounds or network on import),
present from Python 3.10 to 3.13. A module missing from a build (e.g. ``ssl`` without OpenSSL) is skipped."""

_REPLACED_AT_RUNTIME: frozenset[str] = frozenset({"inspect.getfile"})
"""Names other libraries replace when imported (``torch`` swaps ``inspect.getfile`` for a patched copy):
skipped always, so the pairs do not depend on what was imported before."""

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_MIN_WORDS = 3


@dataclass(frozen=True)
class TextPair:
    """One positive pair of the code-search task.

    Attributes:
        query: The first line of the docstring (natural language; the anchor).
        code: Qualified name and signature, e.g. ``"math.isnan(x, /)"`` (the positive).
        module: The module it was found in.
    """

    query: str
    code: str
    module: str


def _defined_here(obj: object, module: str) -> bool:
    """Whether ``obj`` belongs to ``module`` (or its C accelerator, e.g. ``_heapq`` for ``heapq``)."""
    home = getattr(obj, "__module__", None)
    return isinstance(home, str) and home in (module, "_" + module, "_" + module.rsplit(".", 1)[-1])


def _first_line(obj: object) -> str:
    doc = getattr(obj, "__doc__", None)
    if not isinstance(doc, str):
        return ""
    lines = inspect.cleandoc(doc).strip().splitlines()
    return lines[0].strip() if lines else ""


class _Opaque:
    """Stands in for a default value whose repr is not a literal (it may hold process state)."""

    def __repr__(self) -> str:
        return "..."


def _is_literal(value: object) -> bool:
    try:
        ast.literal_eval(repr(value))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return True


def _signature(obj: object) -> str:
    try:
        signature = inspect.signature(obj)  # type: ignore[arg-type]
    except (TypeError, ValueError):  # C functions without a text signature
        return "(...)"
    parameters = [
        p.replace(default=_Opaque()) if p.default is not p.empty and not _is_literal(p.default) else p
        for p in signature.parameters.values()
    ]
    return _ADDRESS.sub("", str(signature.replace(parameters=parameters)))


def _members(module_name: str) -> Iterator[tuple[str, object]]:
    """Public functions and classes of a module and the public methods of its classes, in sorted order."""
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return
    namespace = vars(module)
    for name in sorted(namespace):
        obj = namespace[name]
        is_callable = inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.isclass(obj)
        if name.startswith("_") or not is_callable or not _defined_here(obj, module_name):
            continue
        if f"{module_name}.{name}" in _REPLACED_AT_RUNTIME:
            continue
        yield f"{module_name}.{name}", obj
        if inspect.isclass(obj):
            for method_name in sorted(vars(obj)):
                raw = vars(obj)[method_name]
                if method_name.startswith("_"):
                    continue
                if inspect.isfunction(raw) or inspect.ismethoddescriptor(raw):
                    yield f"{module_name}.{name}.{method_name}", getattr(obj, method_name, raw)


def _all_pairs(modules: Sequence[str]) -> list[TextPair]:
    pairs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated modules and attributes warn on access
        for module_name in modules:
            for qualname, obj in _members(module_name):
                line = _first_line(obj)
                if len(line.split()) < _MIN_WORDS or line.startswith(">>>"):
                    continue
                pairs.append(TextPair(line, qualname + _signature(obj), module_name))
    counts = Counter(p.query for p in pairs)
    seen_code: set[str] = set()
    unique = []
    for p in pairs:
        if counts[p.query] == 1 and p.code not in seen_code:
            seen_code.add(p.code)
            unique.append(p)
    return unique


def stdlib_pairs(
    modules: Sequence[str] = STDLIB_MODULES, *, max_pairs: int | None = 1500, seed: int = 0
) -> list[TextPair]:
    """Collect (docstring line, name + signature) pairs from standard-library modules.

    Args:
        modules: Module names to read (default :data:`STDLIB_MODULES`). Missing modules are skipped.
        max_pairs: Keep this many pairs, drawn by a seeded shuffle (``None`` keeps all, in module order).
        seed: Seed of that draw.

    Returns:
        Pairs with unique queries and unique code strings; a seeded random order when ``max_pairs`` is set.

    Raises:
        TypeError: If ``modules`` is a plain string (a common slip for ``["json"]``).
        ValueError: If ``max_pairs`` is not a positive int, or fewer pairs exist than ``max_pairs``.
    """
    if isinstance(modules, str):
        raise TypeError(f"modules must be a sequence of module names, not the string {modules!r}")
    if max_pairs is not None and (
        isinstance(max_pairs, bool) or not isinstance(max_pairs, int) or max_pairs < 1
    ):
        raise ValueError(f"max_pairs must be a positive int or None, got {max_pairs!r}")
    pairs = _all_pairs(list(modules))
    if max_pairs is None:
        return pairs
    if len(pairs) < max_pairs:
        raise ValueError(f"only {len(pairs)} pairs found in {len(modules)} modules, fewer than {max_pairs}")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    return [pairs[i] for i in order[:max_pairs]]


def split_pairs(
    pairs: Sequence[TextPair], *, held_out: int = 320, seed: int = 0
) -> tuple[list[TextPair], list[TextPair]]:
    """Split pairs into a training set and a held-out set by a seeded permutation.

    Args:
        pairs: The pairs, e.g. from :func:`stdlib_pairs`.
        held_out: How many pairs to hold out (never trained on; the before/after measurements use them).
        seed: Seed of the permutation.

    Returns:
        ``(train, held_out)``: disjoint lists that together hold every pair once.

    Raises:
        ValueError: If ``held_out`` is not an int in ``[1, len(pairs) - 1]``.
    """
    if isinstance(held_out, bool) or not isinstance(held_out, int) or not 1 <= held_out < len(pairs):
        raise ValueError(f"held_out must be an int in [1, {len(pairs) - 1}], got {held_out!r}")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    held = [pairs[i] for i in sorted(order[:held_out])]
    train = [pairs[i] for i in sorted(order[held_out:])]
    return train, held
