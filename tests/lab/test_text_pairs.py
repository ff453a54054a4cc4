"""The stdlib text pairs: deterministic (also across processes), no duplicates, the sizes asked for.

Docstrings differ between Python versions, so no test pins an exact text; one checks a pair's shape on a
function whose docstring and signature have been stable for many releases.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cldiag.lab.text_pairs import STDLIB_MODULES, TextPair, split_pairs, stdlib_pairs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _fresh_process_pairs(hash_seed: str = "0") -> list[TextPair]:
    """The pairs as a fresh interpreter builds them (as `python -m cldiag.lab.sentence_preset` does).

    Not this test process: objects of the standard library that earlier tests' imports patched (torch
    replaces ``inspect.getfile``; others change signatures) would change the pool.
    """
    code = (
        "import json; from cldiag.lab.text_pairs import stdlib_pairs;"
        "print(json.dumps([[p.query, p.code, p.module] for p in stdlib_pairs()]))"
    )
    env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=REPO)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True
    )
    return [TextPair(*row) for row in json.loads(done.stdout)]


@pytest.fixture(scope="module")
def pairs() -> list[TextPair]:
    return _fresh_process_pairs()


def test_default_size_and_no_duplicates(pairs):
    assert len(pairs) == 1500
    assert len({p.query for p in pairs}) == 1500
    assert len({p.code for p in pairs}) == 1500
    assert len({(p.query, p.code) for p in pairs}) == 1500


def test_pairs_are_public_described_and_from_the_listed_modules(pairs):
    for p in pairs:
        assert p.module in STDLIB_MODULES
        assert p.code.startswith(p.module + ".")
        name_path = p.code.split("(", 1)[0][len(p.module) + 1 :]
        assert name_path and not any(part.startswith("_") for part in name_path.split("."))
        assert "(" in p.code and p.code.endswith(")")
        assert len(p.query.split()) >= 3 and not p.query.startswith(">>>")
        assert " at 0x" not in p.code
    assert len({p.module for p in pairs}) > 50  # spread over the module list, not one big module


def test_a_stable_stdlib_function_gives_the_expected_pair():
    everything = stdlib_pairs(["math"], max_pairs=None)
    isnan = [p for p in everything if p.code.startswith("math.isnan(")]
    assert len(isnan) == 1
    assert "NaN" in isnan[0].query


def test_duplicate_docstring_lines_are_dropped_entirely():
    # logging's handlers share "Emit a record." (and others); no copy of such a line may survive.
    logging_pairs = stdlib_pairs(["logging", "logging.handlers"], max_pairs=None)
    assert logging_pairs
    assert not any(p.query == "Emit a record." for p in logging_pairs)
    assert len({p.query for p in logging_pairs}) == len(logging_pairs)


def test_same_result_twice_and_seed_changes_the_draw():
    # In this process (whatever earlier tests imported): the same call twice gives the same draw.
    first = stdlib_pairs()
    assert stdlib_pairs() == first
    other = stdlib_pairs(seed=1)
    assert other != first
    assert len(other) == 1500


def test_same_result_in_processes_with_different_hash_seeds(pairs):
    for hash_seed in ("1", "12345"):
        assert _fresh_process_pairs(hash_seed) == pairs
    assert split_pairs(_fresh_process_pairs("7")) == split_pairs(pairs)


def test_split_is_disjoint_complete_and_seeded(pairs):
    train, held = split_pairs(pairs, held_out=320)
    assert len(held) == 320 and len(train) == 1180
    assert not {p.code for p in train} & {p.code for p in held}
    assert sorted(map(str, train + held)) == sorted(map(str, pairs))
    assert split_pairs(pairs, held_out=320) == (train, held)
    assert split_pairs(pairs, held_out=320, seed=1)[1] != held


@pytest.mark.parametrize("held_out", [0, 1500, -3, 2.5, True])
def test_bad_held_out_is_rejected(pairs, held_out):
    with pytest.raises(ValueError, match="held_out"):
        split_pairs(pairs, held_out=held_out)


def test_bad_arguments_are_rejected():
    with pytest.raises(TypeError, match="sequence of module names"):
        stdlib_pairs("json")
    with pytest.raises(ValueError, match="max_pairs"):
        stdlib_pairs(max_pairs=0)
    with pytest.raises(ValueError, match="fewer than"):
        stdlib_pairs(["json"], max_pairs=1000)
    assert stdlib_pairs(["no_such_module_here"], max_pairs=None) == []


def test_defaults_holding_process_state_do_not_leak_into_the_text():
    # logging.shutdown's default is the live list of handlers: its repr changes when a handler is added
    # (pytest adds several), so it must be written as '...' for the pairs to be the same in every process.
    import logging

    before = stdlib_pairs(["logging"], max_pairs=None)
    handler = logging.NullHandler()
    logging.getLogger("cldiag-test-text-pairs").addHandler(handler)
    try:
        after = stdlib_pairs(["logging"], max_pairs=None)
    finally:
        logging.getLogger("cldiag-test-text-pairs").removeHandler(handler)
    assert after == before
    shutdown = [p.code for p in before if p.code.startswith("logging.shutdown(")]
    assert shutdown == ["logging.shutdown(handlerList=...)"]
