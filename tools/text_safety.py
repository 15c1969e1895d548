"""Text from a model (or an edited storyboard) made safe for ffmpeg, libass, files and prompts.

    clean_model_text("Hello\\x00 world\\x1b\\n", limit=400)   # -> "Hello world"

A NUL ends a C string inside ffmpeg and libass, a lone surrogate cannot be written as UTF-8, a bidirectional
override reorders what is shown, and other control characters (escapes, carriage returns) move a terminal's
cursor or break a subtitle file. Whitespace of any kind becomes one space; control, format, surrogate, private
and unassigned characters are dropped (the zero-width joiners that shape emoji and some scripts are kept), as
tools/cut.py's `clean_subtitle` does. `limit` clamps the length, at a word boundary when one is near, so an
unbroken 10,000-character line never reaches the line wrapping, a prompt or the cut.
"""

from __future__ import annotations

import unicodedata

_UNSHOWN = {"Cc", "Cf", "Cs", "Co", "Cn"}  # control, format, surrogate, private use, unassigned
_JOINERS = {"\u200c", "\u200d"}


def clean_model_text(text: str, limit: int) -> str:
    """`text` on one line without NUL, control or format characters, at most `limit` characters long."""
    text = "".join(" " if ch.isspace() else ch for ch in text)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in _UNSHOWN or ch in _JOINERS)
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit * 0.8 else cut).rstrip()
