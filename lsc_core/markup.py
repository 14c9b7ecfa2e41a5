"""Text a person typed, made safe to place inside Markdown.

Streamlit renders Markdown (with its own additions: `:red[...]`, `:material/...:`,
`$...$` LaTeX) in st.markdown, st.caption, st.subheader, st.error and its kin, widget
labels, st.table cells and image captions. A run name such as `![](http://host/x)`
placed there unescaped would make every viewer's browser fetch that address. Pages pass
run names, file names, search names and error messages that quote them through
`plain()` wherever a plain-text element (st.text, a dataframe cell, a selectbox option)
cannot be used.
"""
from __future__ import annotations

import re

# CommonMark lets a backslash escape any ASCII punctuation character; escaping all of
# them (not only today's special ones) also covers Streamlit's directives, LaTeX and
# GitHub's autolinks, tables and strikethrough.
_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")


def plain(text: object) -> str:
    """Markdown source that renders as exactly `text`, on one line (line breaks become spaces)."""
    return _PUNCTUATION.sub(r"\\\1", _LINE_BREAKS.sub(" ", str(text)))


def one_line(exc: BaseException, limit: int = 240) -> str:
    """An exception's message on one line, at most `limit` characters (then "..."); its type
    when it has no message. How a failure is said to a person in one line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "..."
