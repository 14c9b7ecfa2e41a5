"""plain(): text a person typed, rendered by Markdown as exactly that text."""
import pytest

from lsc_core.markup import plain


@pytest.mark.parametrize("text, expected", [
    ("seed-part2-3", r"seed\-part2\-3"),
    ("![](http://127.0.0.1:9/x)", r"\!\[\]\(http\:\/\/127\.0\.0\.1\:9\/x\)"),
    ("<img src=x>", r"\<img src\=x\>"),
    ("**bold** _it_ `code`", r"\*\*bold\*\* \_it\_ \`code\`"),
    (":red[x] $y$ :material/home:", r"\:red\[x\] \$y\$ \:material\/home\:"),
    ("a\\b", r"a\\b"),
    ("two\nlines\r\n# heading", r"two lines \# heading"),
    ("café 3", "café 3"),
])
def test_plain_escapes_every_markdown_character_and_line_break(text, expected):
    assert expected == plain(text)


def test_plain_accepts_any_object():
    assert r"no run \'x\'" == plain(ValueError("no run 'x'"))
    assert "12" == plain(12)
