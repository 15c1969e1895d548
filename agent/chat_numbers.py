"""Shot numbers in a chat message: digits, English words and ordinals, Chinese numerals, "last" and 最后一个.

`shot_refs` finds every shot a message names ("shots 2 and 4", "第二和第四个镜头") with where it stands, so
the parser can tell "after shot 2" from "shot 2".
"""

from __future__ import annotations

import re

from agent.chat_words import _ZH_NUM, EN_NUMBERS, EN_ORDINALS, NUM, ORD
from tools.brief import ZH_DIGITS


def zh_number(text: str) -> int | None:
    """十 → 10, 十二 → 12, 二十三 → 23, 一百 → 100, 3 → 3."""
    if text.isdigit():
        return int(text)
    if not text or any(ch not in _ZH_NUM for ch in text):
        return None
    if "百" in text:
        head, _, rest = text.partition("百")
        return (ZH_DIGITS.get(head, 1) if head else 1) * 100 + (zh_number(rest.lstrip("零")) or 0)
    if "十" in text:
        head, _, tail = text.partition("十")
        return (ZH_DIGITS.get(head, 1) if head else 1) * 10 + (ZH_DIGITS.get(tail, 0) if tail else 0)
    if len(text) == 1:
        return ZH_DIGITS.get(text)
    return None


def number(word: str) -> int | None:
    word = word.lower().strip()
    if word.isdigit():
        return int(word)
    if word in EN_NUMBERS:
        return EN_NUMBERS[word]
    if word in EN_ORDINALS:
        return EN_ORDINALS[word]
    if m := re.fullmatch(r"(\d+)(?:st|nd|rd|th)", word):
        return int(m[1])
    return zh_number(word)


# --- finding shot numbers -------------------------------------------------------------------------------------

ZH_SHOT = r"(?:个|号)?(?:镜头|分镜|镜|个|场)?"
SHOT_PATTERNS = [
    # English: "shot 3", "shot #3", "shots 2 and 4", "the third shot", "the last one", "3rd shot"
    re.compile(rf"\b(?:shots?|scenes?|panels?|frames?)\s*(?:#|no\.?\s*|number\s*)?(?P<n>{NUM})\b", re.I),
    re.compile(rf"\b(?P<o>{ORD})\s+(?:shot|one|scene|panel|frame)\b", re.I),
    re.compile(r"\bthe\s+(?P<o>last|first|final|opening|closing)\b(?!\s+(?:time|thing))", re.I),
    # Chinese: 第三个镜头, 第3个, 三号镜头, 镜头3, 最后一个镜头
    re.compile(rf"第\s*(?P<n>[\d{_ZH_NUM}]+)\s*{ZH_SHOT}"),
    re.compile(rf"(?P<n>[\d{_ZH_NUM}]+)\s*号(?:镜头|分镜|镜)?"),
    re.compile(rf"(?:镜头|分镜)\s*(?P<n>[\d{_ZH_NUM}]+)"),
    re.compile(r"(?P<last>最后(?:一个|一|的)?(?:镜头|分镜|镜|个)?|末尾的?镜头)"),
]
# In "shots 2 and 4" the second number follows the first.
_MORE = re.compile(
    rf"^\s*(?:,|and|&|和|与|跟|、|以及)\s*(?:shot\s*|第\s*)?(?P<n>{ORD}|{NUM})(?![a-z]){ZH_SHOT}", re.I
)


def shot_refs(text: str, n_shots: int) -> list[tuple[int, int, int]]:
    """(shot number, start, end) for every shot named, in order of appearance; 'last' is n_shots."""
    found: list[tuple[int, int, int]] = []
    taken: list[tuple[int, int]] = []
    for pattern in SHOT_PATTERNS:
        for m in pattern.finditer(text):
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue
            groups = m.groupdict()
            if groups.get("last"):
                value = -1
            else:
                value = number(groups.get("n") or groups.get("o") or "")
            if value is None:
                continue
            value = n_shots if value == -1 else value
            found.append((value, m.start(), m.end()))
            taken.append((m.start(), m.end()))
            end = m.end()
            while more := _MORE.match(text[end:]):
                v = number(more["n"])
                if v is None:
                    break
                found.append((n_shots if v == -1 else v, end + more.start(), end + more.end()))
                taken.append((end, end + more.end()))
                end += more.end()
    return sorted(found, key=lambda f: f[1])


def _cut(text: str, spans: list[tuple[int, int]]) -> str:
    for a, b in sorted(spans, reverse=True):
        text = text[:a] + " " + text[b:]
    return text
