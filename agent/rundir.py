"""The run directory: the product of a run and its durable memory.

Every path inside it is built here from program-made ids (s01, take-2), never from user or model text.
Writes are atomic (write to a temporary file, then rename) so a run killed at any moment leaves either the
old file or the new one, never half of one. `manifest.json` is derived from the take and clip records on disk.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

from tools.files import read_json, write_atomic, write_json
from tools.film import Clip, Take, Variant

__all__ = [
    "RecordError",
    "RunDir",
    "RunDirError",
    "StoryboardFileError",
    "clean_temp_files",
    "read_json",
    "write_atomic",
    "write_json",
]

SHOT_ID = re.compile(r"s\d{2,3}")
VARIANT_NAME = re.compile(r"[a-z]{1,20}|\d{1,3}x\d{1,3}")
_manifest_lock = threading.Lock()

MARKER = "run.json"  # written last at start-up: a folder with it is a run that --resume continues
# What start-up writes before the marker; a folder that holds only these (a kill during start-up) may be reused.
STARTUP_FILES = frozenset({"settings.json", "brief.json", "run.lock", "refs"})
# Temporary files of an atomic write (".name.XXXX.tmp"), of ffmpeg's output before its rename (".s01.XXXX.mp4"),
# of the sound (".voice-XXXX.wav", ".mix-XXXX.m4a") and of the contact sheet ("contact_sheet.tmp.png").
TEMP_NAME = re.compile(r"\..+[.-][a-z0-9_]{8}\.(tmp|mp4|wav|m4a)|contact_sheet\.tmp\.png")
CUT_FOLDER_AGE_S = 5  # a cut's folder this young may be one whose ffmpeg is starting (milliseconds after)
MAX_REFERENCES = 4
MAX_REFERENCE_BYTES = 50 * 1024 * 1024


class RunDirError(ValueError):
    """The folder given is not usable as a run directory; the message says why."""


class StoryboardFileError(RunDirError):
    """A hand-edited storyboard.json that does not parse or validate; the message names the line or field."""


class RecordError(RunDirError):
    """A record or image in the run directory that cannot be read; the message names it and what to do."""


def is_temp_file(path: Path) -> bool:
    return path.is_file() and TEMP_NAME.fullmatch(path.name) is not None


def only_startup_files(root: Path) -> bool:
    """A folder left by a kill during start-up: nothing in it but start-up files and temporary files."""
    return all(p.name in STARTUP_FILES or is_temp_file(p) for p in root.iterdir())


def clean_temp_files(root: Path) -> list[Path]:
    """Remove what killed writes left: temporary files in the run directory, and cut work folders
    (cd-cut-* in the system temp folder) that no live process is using. Returns what was removed."""
    removed = []
    for folder in [
        root,
        root / "clips",
        root / "audio",
        root / "refs",
        root / "storyboards",
        *root.glob("shots/s*"),
    ]:
        for sub in (folder, folder / "variants"):
            if sub.is_dir():
                for p in sub.iterdir():
                    if is_temp_file(p):
                        p.unlink(missing_ok=True)
                        removed.append(p)
    for work in _stale_cut_folders():
        shutil.rmtree(work, ignore_errors=True)
        removed.append(work)
    return removed


def _stale_cut_folders() -> list[Path]:
    """cd-cut-* folders of cuts that were killed. Several runs share the system temp folder, so a folder is
    stale only when it is not new and no process has its working directory in it (ffmpeg runs inside it)."""
    folders = [p for p in Path(tempfile.gettempdir()).glob("cd-cut-*") if p.is_dir()]
    now = time.time()
    folders = [p for p in folders if now - p.stat().st_mtime > CUT_FOLDER_AGE_S]
    if not folders:
        return []
    busy = set()
    for link in Path("/proc").glob("[0-9]*/cwd"):
        try:
            busy.add(Path(os.readlink(link)))
        except OSError:
            continue
    return [p for p in folders if not any(b == p or p in b.parents for b in busy)]


def check_shot_id(shot_id: str) -> str:
    if not SHOT_ID.fullmatch(shot_id):
        raise ValueError(f"shot id {shot_id!r} is not program-made (expected s01, s02, ...)")
    return shot_id


class RunDir:
    """Paths and records of one run."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # --- paths -------------------------------------------------------------------------------------------
    def shot_dir(self, shot_id: str) -> Path:
        return self.root / "shots" / check_shot_id(shot_id)

    def take_image(self, shot_id: str, n: int) -> Path:
        return self.shot_dir(shot_id) / f"take-{int(n)}.png"

    def take_record(self, shot_id: str, n: int) -> Path:
        return self.shot_dir(shot_id) / f"take-{int(n)}.json"

    def clip_path(self, shot_id: str) -> Path:
        return self.root / "clips" / f"{check_shot_id(shot_id)}.mp4"

    def clip_record(self, shot_id: str) -> Path:
        return self.root / "clips" / f"{check_shot_id(shot_id)}.json"

    def variant_path(self, shot_id: str, platform: str) -> Path:
        """shots/s01/variants/tiktok.png; a ratio 4:5 becomes 4x5 (platform labels are checked by resolve_size)."""
        name = platform.replace(":", "x")
        if not VARIANT_NAME.fullmatch(name):
            raise ValueError(f"variant name {platform!r} is not a platform preset or a ratio")
        return self.shot_dir(shot_id) / "variants" / f"{name}.png"

    def rel(self, path: Path) -> str:
        return Path(path).relative_to(self.root).as_posix()

    def abs(self, rel: str) -> Path:
        p = (self.root / rel).resolve()
        if self.root.resolve() not in p.parents and p != self.root.resolve():
            raise ValueError(f"path {rel!r} escapes the run directory")
        return p

    # --- records -----------------------------------------------------------------------------------------
    def load_take(self, shot_id: str, n: int) -> Take | None:
        """The recorded take, if its record and its image (when it has one) are both on disk."""
        rec = self.take_record(shot_id, n)
        if not rec.exists():
            return None
        take = self._record(rec, Take)
        if take.error is None and not self.take_image(shot_id, n).exists():
            return None
        return take

    def _record(self, path: Path, model):
        """A record, or RecordError naming the file: it was damaged outside the program (writes are atomic)."""
        from pydantic import ValidationError

        try:
            return model.model_validate(read_json(path))
        except (OSError, UnicodeDecodeError, ValueError, ValidationError) as err:
            why = str(err).splitlines()[0][:160]
            raise RecordError(
                f"{path}: a damaged record ({why}); delete it (and its image) and --resume to make it again"
            ) from None

    def check_records(self) -> None:
        """Every take and clip record readable, every recorded take's image a whole image; else RecordError.

        Run before a resume, so that a damaged file is named at start, not as a traceback in the middle."""
        from PIL import Image

        for rec in sorted(self.root.glob("shots/s*/take-*.json")):
            take = self._record(rec, Take)
            image = rec.with_suffix(".png")
            if take.error is None and image.exists():
                try:
                    with Image.open(image) as im:
                        im.verify()
                except Exception as err:  # PIL raises many kinds for a damaged file; each means the same here
                    raise RecordError(
                        f"{image}: not a readable image ({type(err).__name__}: {str(err)[:120]}); delete it and "
                        f"{rec.name} and --resume to render the take again"
                    ) from None
        for rec in sorted(self.root.glob("clips/s*.json")):
            self._record(rec, Clip)

    def save_take(self, take: Take) -> None:
        # The take's own record is the durable truth; the manifest is rebuilt from the records per shot and per cut.
        write_json(self.take_record(take.shot_id, take.n), take)

    def load_clip(self, shot_id: str) -> Clip | None:
        rec = self.clip_record(shot_id)
        if not rec.exists() or not self.clip_path(shot_id).exists():
            return None
        return self._record(rec, Clip)

    def save_clip(self, clip: Clip) -> None:
        write_json(self.clip_record(clip.shot_id), clip)
        self.write_manifest()

    def load_variant(self, shot_id: str, platform: str, take: int) -> Variant | None:
        """The recorded variant made from `take`, if its record and image are on disk."""
        rec = self.variant_path(shot_id, platform).with_suffix(".json")
        if not rec.exists():
            return None
        variant = Variant.model_validate(read_json(rec))
        if variant.take != take or (
            variant.error is None and not self.variant_path(shot_id, platform).exists()
        ):
            return None
        return variant

    def save_variant(self, variant: Variant) -> None:
        write_json(self.variant_path(variant.shot_id, variant.platform).with_suffix(".json"), variant)
        self.write_manifest()

    def variants(self) -> list[Variant]:
        return [
            Variant.model_validate(read_json(p)) for p in sorted(self.root.glob("shots/s*/variants/*.json"))
        ]

    def takes(self) -> list[Take]:
        out = []
        for rec in sorted(self.root.glob("shots/s*/take-*.json")):
            out.append(self._record(rec, Take))
        return sorted(out, key=lambda t: (t.shot_id, t.n))

    def clips(self) -> list[Clip]:
        return [self._record(p, Clip) for p in sorted(self.root.glob("clips/s*.json"))]

    def write_manifest(self, extra: dict | None = None) -> None:
        """Rebuild manifest.json from the records on disk (the single source of truth)."""
        with _manifest_lock:
            path = self.root / "manifest.json"
            base = read_json(path) if path.exists() else {}
            base.update(extra or {})
            base["takes"] = [t.model_dump(mode="json") for t in self.takes()]
            base["clips"] = [c.model_dump(mode="json") for c in self.clips()]
            base["variants"] = [v.model_dump(mode="json") for v in self.variants()]
            write_json(path, base)


def load_references(paths: list[str]) -> list:
    """Open the user's --reference images (RGB), or raise SettingsError naming the file and what is wrong.

    Called before the run directory exists, so a bad reference leaves nothing behind.
    """
    from tools.errors import SettingsError
    from tools.images import ImageError, open_image

    if len(paths) > MAX_REFERENCES:
        raise SettingsError(f"{len(paths)} --reference images given; at most {MAX_REFERENCES}")
    images = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise SettingsError(f"--reference {raw}: no such file")
        if path.is_file() and path.stat().st_size > MAX_REFERENCE_BYTES:
            raise SettingsError(f"--reference {raw}: larger than {MAX_REFERENCE_BYTES // 2**20} MB")
        try:
            images.append(open_image(path))  # regular files only, a pixel limit, any mode and bit depth
        except ImageError as err:
            raise SettingsError(f"--reference {err}") from None
        except OSError as err:
            raise SettingsError(f"--reference {raw}: cannot be read ({err.strerror or err})") from None
    return images


def save_references(images: list, root: Path) -> list[str]:
    """Write the references into the run as refs/ref-N.png (program-made names); returns run-relative paths."""
    rels = []
    for i, image in enumerate(images, 1):
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        write_atomic(root / "refs" / f"ref-{i}.png", buf.getvalue())
        rels.append(f"refs/ref-{i}.png")
    return rels
