"""Text from files and URLs made safe to show in Streamlit Markdown (no Streamlit import here).

Streamlit renders ``st.markdown``, ``st.warning``, ``st.caption``, titles and headers as Markdown: a run
name like ``![x](http://host/leak.png)`` would make every visitor's browser fetch that URL, and
``[Click here](http://…)`` would be a live link. Every string that comes from a run directory (names,
config keys and values, problems) or from the URL (``?run=``) goes through :func:`escape_markdown` once,
right where it is formatted into Markdown.
"""

from __future__ import annotations

import re

__all__ = ["MAX_SHOWN_CHARS", "escape_markdown"]

MAX_SHOWN_CHARS = 300
"""Untrusted text is cut to this many characters before it is shown."""

# Every ASCII punctuation character CommonMark lets a backslash escape that starts or ends syntax in
# Markdown, GitHub's extensions or Streamlit's own (":red[…]" colours, ":material/…:" icons, "$…$" math).
_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$&\"'=^@/])")
# GitHub's autolink extension turns bare "http://…", "www.…" and "name@host" in *rendered text* into
# links, after escapes are resolved: a zero-width space inside each (invisible) is what stops it.
_AUTOLINK = re.compile(r"(?i)(://|\bwww\.|@)")
_ZWSP = "\u200b"


def escape_markdown(value: object, max_chars: int = MAX_SHOWN_CHARS) -> str:
    r"""``str(value)`` as literal text inside Markdown: no link, image, HTML, heading, colour or math.

    Line breaks and runs of white space become one space (a line break could start a block such as a
    heading or a code block), the text is cut to ``max_chars`` characters (with "…"), and each Markdown
    punctuation character is backslash-escaped. Bare URLs, ``www.`` names and e-mail addresses get an
    invisible zero-width space after their first character of ``://``, ``www.`` or ``@`` (escapes alone
    do not stop GitHub-flavoured autolinks).

    Args:
        value: anything; it is formatted with ``str``.
        max_chars: the most characters kept.

    Returns:
        The escaped text.

    Example:
        >>> escape_markdown("![x](h/p.png) **b**")
        '\\!\\[x\\]\\(h\\/p\\.png\\) \\*\\*b\\*\\*'
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    text = " ".join(str(value).split())
    if len(text) > max_chars:
        text = text[:max_chars] + "…"
    text = _AUTOLINK.sub(lambda m: m.group(1)[0] + _ZWSP + m.group(1)[1:], text)
    return _SPECIAL.sub(r"\\\1", text)
