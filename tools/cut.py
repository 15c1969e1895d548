"""Tool: cut. Assembles the clips in shot order with crossfades and subtitles.

Writes `final.srt` and `final.mp4` (subtitles burned in and as a soft mov_text track) with the ffmpeg that
ships inside imageio-ffmpeg. Chinese subtitles use the Noto Sans CJK font installed with the project.
"""

from __future__ import annotations

from agent.rundir import RunDir
from agent.state import Clip, Cut, Shot


def cut_film(shots: list[Shot], clips: list[Clip], run: RunDir, settings) -> Cut:
    """Cut `clips` (one per shot, in `shots` order) into final.mp4 + final.srt under the run directory."""
    raise NotImplementedError
