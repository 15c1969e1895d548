"""Who encoded each video segment of a film: a shot branch ahead of the cut, or the cut node itself.

    spy = SegmentSpy().install()                       # or .install(monkeypatch.setattr) in a test
    ... make a film ...
    spy.by("cut")                                      # [(a, b), ...]: what no branch had prepared

It wraps `tools.cut_segments._encode_segment` (every encode, tagged) and `tools.cut.cut_film` (marks the cut's
own span). Used by tests/test_cut_prepared.py, tests/test_cuts.py and evals/bench_tail.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class SegmentSpy:
    def __init__(self) -> None:
        self.made: list[tuple[str, Any, Any]] = []  # ("cut" | "branch", segment start, segment end)
        self._in_cut = False

    def install(self, set_attr: Callable[[Any, str, Any], None] = setattr) -> SegmentSpy:
        """Wrap the two functions with `set_attr` (a test's monkeypatch.setattr undoes it afterwards)."""
        import tools.cut as cut_module
        import tools.cut_segments as segs

        real_encode, real_cut = segs._encode_segment, cut_module.cut_film

        def encode(seg, *a, **k):
            self.made.append(("cut" if self._in_cut else "branch", seg.a, seg.b))
            return real_encode(seg, *a, **k)

        def cut(*a, **k):
            self._in_cut = True
            try:
                return real_cut(*a, **k)
            finally:
                self._in_cut = False

        set_attr(segs, "_encode_segment", encode)
        set_attr(cut_module, "cut_film", cut)
        return self

    def by(self, who: str) -> list[tuple[Any, Any]]:
        """The (start, end) of each segment encoded by `who`: "cut" or "branch"."""
        return [(a, b) for w, a, b in self.made if w == who]

    def clear(self) -> None:
        self.made.clear()
