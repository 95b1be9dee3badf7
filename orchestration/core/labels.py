"""A label a tenant sent (provider, model, and any other client-chosen name) made safe for the medium
that shows it to a person.

A label is data: it may hold 256 characters of noise, newlines, terminal escapes, bidirectional
overrides, Slack mentions (`<!channel>`), links (`<https://evil.example|click>`), Markdown or
matplotlib mathtext (`$...$`). Each medium gets its own escaping, applied where the text is shown:

- `visible`: every control and invisible formatting character as a `\\uXXXX` escape (newlines
  included), so a label is one line and shows what it really contains. Plain text, email headers
  and chart labels use it.
- `slack`: Slack's own escaping of `&`, `<` and `>` in a message's `text`, after `visible`.
- `markdown`: Dagster's metadata Markdown, every syntax character backslash-escaped.
- HTML goes through Jinja2's autoescape (orchestration/core/templates/), after `visible`.
"""

from __future__ import annotations

import re
import unicodedata

# Markdown's syntax characters (CommonMark's backslash-escapable ASCII punctuation).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&\"'$])")


def visible(text: object) -> str:
    """`text` with every control, format, separator-other or unassigned character escaped as \\uXXXX."""
    text = "" if text is None else str(text)
    return "".join(
        f"\\u{ord(ch):04x}" if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") else ch
        for ch in text
    )


def slack(text: object) -> str:
    """A message for Slack's `text` field: visible, with `&`, `<` and `>` escaped (Slack's rule), so no
    mention, link or formatting control a label carries takes effect."""
    return visible(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def markdown(text: object) -> str:
    """Text for Dagster's Markdown metadata: visible, every Markdown syntax character escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", visible(text))
