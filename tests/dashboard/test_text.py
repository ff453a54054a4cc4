"""escape_markdown: text from files and URLs shown literally (the browser test checks the rendering)."""

from __future__ import annotations

import re

import pytest

from cldiag.text import escape_markdown


@pytest.mark.parametrize(
    ("raw", "absent"),
    [
        ("![x](http://h/leak.png)", "http://"),
        ("[Click here](http://h/c)", "http://"),
        ("<http://h/auto>", "http://"),
        (":red[alarm] :material/home:", "\n"),
        ("$x^2$", "\n"),
        ("a\n# heading\n    code", "\n"),
        ("**bold** _it_ `code`", "\n"),
        ("http://h/bare www.h.org me@h.org", "://"),
    ],
)
def test_markdown_syntax_is_escaped(raw, absent):
    out = escape_markdown(raw)
    assert absent not in out.replace("\\", "") or absent == "\n"
    assert "\n" not in out and not re.search(r"(?<!\\)[<>$\[\]()*_`#:!]", out), out
    assert out.replace("\\", "").replace("\u200b", "") == " ".join(raw.split())  # same text when shown


def test_long_text_is_cut_and_bad_limit_refused():
    assert escape_markdown("a" * 1000, max_chars=10) == "a" * 10 + "…"
    with pytest.raises(ValueError, match="max_chars"):
        escape_markdown("x", max_chars=0)
