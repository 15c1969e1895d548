"""Tool: animate. Turns an accepted still into a clip of the shot's duration.

Backends:
- `motion`: the offline default; a camera move over the still (push-in, pull-out, pan, drift) rendered by ffmpeg.
- `diffusers`: image-to-video (LTX-Video, Wan 2.2 TI2V/I2V) or text-to-video (Wan 2.2 T2V) through diffusers.
"""

from __future__ import annotations

import os
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tools.files import temp_file
from tools.film import Provenance

MOTIONS = ("push-in", "pull-out", "pan-left", "pan-right", "drift", "static")
ZOOM = 0.10  # a push-in travels 1.0 → 1.10: visible, and title-safe text stays in frame
PAN_ZOOM = 1.08  # pans need a margin to travel across
MAX_PRESCALED_SIDE = 8192
PRESCALE = 3  # zoompan steps in 1/3 output pixel: smooth enough, and 4x costs ~15% more CPU per clip
PARTS_MIN_CPUS = 8  # a clip is rendered in parts at once only where cores are idle for them
PART_FRAMES = 24  # the least frames of a part: a shorter one costs more in start-up than it saves
MAX_PARTS = 4


class AnimateRequest(BaseModel):
    image_path: str = Field(description="Absolute path of the still to animate.")
    output_path: str = Field(description="Absolute path of the MP4 to write.")
    prompt: str = ""
    negative_prompt: str = ""
    duration: float
    fps: int
    width: int
    height: int
    motion: str = "push-in"
    seed: int = 0


class AnimateResult(Provenance):
    path: str


class VideoBackend(ABC):
    name: str = "base"
    model: str = ""

    @abstractmethod
    def animate(self, req: AnimateRequest) -> AnimateResult:
        """Make one result from the request; raise BackendError when the service cannot."""


def frame_count(duration: float, fps: int) -> int:
    """Frames a clip of `duration` seconds has at `fps` (at least one). The cut uses the same rounding."""
    return max(1, round(duration * fps))


def _parts(n: int) -> int:
    """How many runs of frames a motion clip of `n` frames is rendered in at once (1 on a small machine)."""
    if (os.cpu_count() or 1) < PARTS_MIN_CPUS:
        return 1
    return max(1, min(MAX_PARTS, n // PART_FRAMES))


def run_ffmpeg(
    args: list[str], *, cwd: str | Path | None = None, env: dict[str, str] | None = None, nice: int = 0
) -> None:
    """Run the ffmpeg that ships with imageio-ffmpeg with an argument list (never a shell string).

    `nice`: how much lower than this process ffmpeg runs (work done ahead, which may go unused, yields the
    cores to the work that is needed now). A failure raises RuntimeError carrying ffmpeg's own last lines,
    which name the real cause.
    """
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    with subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace"
    ) as proc:
        if nice:
            try:
                os.setpriority(os.PRIO_PROCESS, proc.pid, os.getpriority(os.PRIO_PROCESS, 0) + nice)
            except OSError:  # it has already exited, or the priority is at its floor: it runs as it is
                pass
        try:
            _, stderr = proc.communicate()
        except BaseException:  # as subprocess.run: an interrupted wait leaves no ffmpeg behind
            proc.kill()
            raise
    if proc.returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-8:])
        raise RuntimeError(f"ffmpeg failed (exit {proc.returncode}):\n{tail}")


def _motion_exprs(motion: str, n: int, seed: int, first: int = 0) -> tuple[str, str, str]:
    """zoompan expressions (zoom, x, y) for a move that runs from the first frame to the last.

    `p` is the progress 0 → 1 over the clip; x/y are the crop's top-left corner in input pixels, kept inside
    the frame: the largest offset is `iw - iw/zoom`. `first`: the clip frame that zoompan's frame 0 is (a part
    of the clip rendered on its own): every frame depends only on its number, so parts join seamlessly.
    """
    p = f"min(1,(on+{first})/{max(1, n - 1)})"
    centre_x, centre_y = "(iw-iw/zoom)/2", "(ih-ih/zoom)/2"
    if motion == "static":
        return "1", "0", "0"
    if motion == "push-in":
        return f"1+{ZOOM}*{p}", centre_x, centre_y
    if motion == "pull-out":
        return f"1+{ZOOM}*(1-{p})", centre_x, centre_y
    if motion == "pan-left":  # the camera turns left: the view slides from the right edge to the left
        return f"{PAN_ZOOM}", f"(iw-iw/zoom)*(1-{p})", centre_y
    if motion == "pan-right":
        return f"{PAN_ZOOM}", f"(iw-iw/zoom)*{p}", centre_y
    if motion == "drift":  # a slow diagonal with a slight push; the seed picks which diagonal
        sx, sy = (1, -1) if seed % 2 else (-1, 1)
        if seed % 4 >= 2:
            sx, sy = -sx, -sy
        fx = f"(0.5+{0.3 * sx}*({p}-0.5))"
        fy = f"(0.5+{0.3 * sy}*({p}-0.5))"
        return f"1.05+0.03*{p}", f"(iw-iw/zoom)*{fx}", f"(ih-ih/zoom)*{fy}"
    raise ValueError(f"unknown motion {motion!r}; use one of: {', '.join(MOTIONS)}")


class MotionBackend(VideoBackend):
    """A camera move over the still, rendered by ffmpeg's zoompan filter into an H.264 MP4.

    zoompan places its crop on whole pixels, which makes slow moves judder; the still is first scaled up
    (up to 3×) so one whole-pixel step is a third of an output pixel. The upscale happens once per clip
    (the input is a single frame), so it costs little. zoompan itself runs on one thread: on a machine of
    `PARTS_MIN_CPUS` cores or more the clip's frames are made in runs by several ffmpeg processes at once
    (each frame depends only on its number) and joined by stream copy (`parameters["parts"]`).
    """

    name = "motion"
    model = "ffmpeg-zoompan"

    def animate(self, req: AnimateRequest) -> AnimateResult:
        t0 = time.perf_counter()
        if req.motion not in MOTIONS:
            raise ValueError(f"unknown motion {req.motion!r}; use one of: {', '.join(MOTIONS)}")
        if req.width % 2 or req.height % 2 or req.width < 16 or req.height < 16:
            raise ValueError(
                f"clip size {req.width}x{req.height} is not encodable: H.264 yuv420p needs even sides of at least 16"
            )
        if req.fps <= 0 or req.duration <= 0:
            raise ValueError(f"duration ({req.duration}) and fps ({req.fps}) must be positive")
        src = Path(req.image_path)
        if not src.is_file():
            raise FileNotFoundError(f"still to animate not found: {src}")
        out = Path(req.output_path)
        out.parent.mkdir(parents=True, exist_ok=True)

        n = frame_count(req.duration, req.fps)
        k = max(1, min(PRESCALE, MAX_PRESCALED_SIDE // max(req.width, req.height)))
        parts = _parts(n)
        tmp = temp_file(out.parent, f".{out.stem}.", ".mp4")
        try:
            if parts == 1:
                self._render(req, src, n, k, 0, n, tmp, threads=0)
            else:
                self._render_parts(req, src, n, k, parts, tmp)
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return AnimateResult(
            path=str(out),
            backend=self.name,
            model=self.model,
            parameters={
                "motion": req.motion,
                "frames": n,
                "fps": req.fps,
                "duration": n / req.fps,
                "width": req.width,
                "height": req.height,
                "prescale": k,
                "crf": 18,
                "parts": parts,
            },
            timings={"wall_s": round(time.perf_counter() - t0, 3)},
        )

    def _render(
        self, req: AnimateRequest, src: Path, n: int, k: int, first: int, count: int, path: str, threads: int
    ) -> None:
        """Frames [first, first + count) of the clip's move into `path` (H.264); threads 0: x264 picks."""
        zoom, x, y = _motion_exprs(req.motion, n, req.seed, first)
        pw, ph = req.width * k, req.height * k
        vf = (
            # Cover the frame whatever the still's size, then crop to the exact aspect.
            f"scale={pw}:{ph}:force_original_aspect_ratio=increase:flags=bicubic,crop={pw}:{ph},"
            f"zoompan=z='{zoom}':x='{x}':y='{y}':d={count}:s={req.width}x{req.height}:fps={req.fps},"
            "format=yuv420p"
        )
        thread_args = ["-threads", str(threads)] if threads else []
        run_ffmpeg(
            # -i after "-f image2" so a still whose name looks like a pattern is read as one file.
            ["-f", "image2", "-pattern_type", "none", "-i", str(src), "-vf", vf, "-frames:v", str(count),
             "-c:v", "libx264", "-preset", "superfast", "-crf", "18", "-pix_fmt", "yuv420p", *thread_args,
             "-r", str(req.fps), "-movflags", "+faststart", "-an", path]
        )  # fmt: skip

    def _render_parts(self, req: AnimateRequest, src: Path, n: int, k: int, parts: int, path: str) -> None:
        """The clip in `parts` runs of frames rendered at once (zoompan runs on one thread), then joined by
        stream copy: the frames are the ones one process makes, each part starting on a keyframe."""
        import tempfile
        from concurrent.futures import ThreadPoolExecutor

        cuts = [n * j // parts for j in range(parts + 1)]
        threads = max(1, (os.cpu_count() or 2) // parts)
        with tempfile.TemporaryDirectory(prefix=".parts-", dir=Path(path).parent) as tmp:
            names = [f"part{j}.mp4" for j in range(parts)]
            with ThreadPoolExecutor(max_workers=parts) as pool:
                jobs = [
                    pool.submit(self._render, req, src, n, k, a, b - a, str(Path(tmp) / name), threads)
                    for a, b, name in zip(cuts, cuts[1:], names, strict=False)
                ]
                for job in jobs:
                    job.result()
            (Path(tmp) / "list.txt").write_text("".join(f"file '{name}'\n" for name in names))
            run_ffmpeg(
                ["-f", "concat", "-safe", "0", "-i", "list.txt", "-c", "copy", "-movflags", "+faststart",
                 "-f", "mp4", str(Path(path).resolve())],
                cwd=tmp,
            )  # fmt: skip


class DiffusersVideoBackend(VideoBackend):
    """Image-to-video (LTX-Video, Wan 2.2 TI2V / I2V) from the accepted still, or text-to-video (Wan 2.2 T2V).

    Frame count and size follow the model's rules by construction (tools/models.py: LTX 8k+1 frames and sides
    multiples of 32, Wan 4k+1 and 16 or 32): the model makes at least duration*fps frames at the size rounded up,
    and the clip keeps exactly duration*fps frames, centre-cropped to the requested size, encoded as H.264 at
    the requested fps.
    """

    name = "diffusers"

    def __init__(self, model: str, manager=None, num_inference_steps: int | None = None):
        from tools.models import ModelManager

        self.model = model
        self.manager = manager or ModelManager()
        self.num_inference_steps = num_inference_steps

    def animate(self, req: AnimateRequest) -> AnimateResult:
        import numpy as np
        from PIL import Image

        from tools.generate_image import BackendError
        from tools.models import OutOfMemory, fit_to

        start = time.perf_counter()
        spec = self.manager.spec(self.model)
        kw, task, needed = self._pipeline_kwargs(spec, req)
        try:
            video = self.manager.run(self.model, task, **kw).frames[0][:needed]
            cost = self.manager.last_cost()
        except OutOfMemory as e:
            raise BackendError(str(e)) from e
        clip = [
            np.asarray(
                fit_to(Image.fromarray((np.clip(f, 0, 1) * 255).astype("uint8")), req.width, req.height)
            )
            for f in video
        ]
        _write_h264(clip, req)
        params = {k: v for k, v in kw.items() if isinstance(v, (int, float, str)) and k != "prompt"}
        params.update(
            task=task,
            pipeline=spec.pipelines[task],
            generated_size=[kw["width"], kw["height"]],
            generated_frames=kw["num_frames"],
            frames=len(clip),
        )
        return AnimateResult(
            path=req.output_path,
            backend=self.name,
            model=self.model,
            parameters=params,
            # The clip's wait for the device and its CUDA-event seconds, apart from its wall time (issue 14).
            timings={**(cost.timings() if cost else {}), "wall_s": round(time.perf_counter() - start, 3)},
        )

    def _pipeline_kwargs(self, spec, req: AnimateRequest) -> tuple[dict, str, int]:
        """The pipeline call's arguments at the model's frame count and size, its task, and the frames kept."""
        from PIL import Image

        from tools.models import call_kwargs, fit_to, frame_count, round_size

        needed, frames = frame_count(req.duration, req.fps, spec.frame_step)
        gw, gh = round_size(req.width, req.height, spec.size_multiple)
        kw = call_kwargs(spec, req.prompt, req.negative_prompt, self.num_inference_steps, None)
        kw.update(
            height=gh,
            width=gw,
            num_frames=frames,
            generator=self.manager.generator(req.seed),
            output_type="np",
        )
        task = "i2v" if "i2v" in spec.pipelines else "t2v"
        if task == "i2v":
            with Image.open(req.image_path) as im:
                kw["image"] = fit_to(im.convert("RGB"), gw, gh)
        if spec.pipelines[task].startswith("LTX"):
            kw["frame_rate"] = req.fps
        return kw, task, needed


def _write_h264(clip: list, req: AnimateRequest) -> None:
    import imageio_ffmpeg
    import numpy as np

    Path(req.output_path).parent.mkdir(parents=True, exist_ok=True)
    # H.264 at exactly the asked size: macro_block_size=1 stops imageio from padding to multiples of 16.
    writer = imageio_ffmpeg.write_frames(
        req.output_path,
        (req.width, req.height),
        fps=req.fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        macro_block_size=1,
        quality=8,
    )
    writer.send(None)
    for frame in clip:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


def select_video_backend(settings, manager: Callable[[], Any] | None = None) -> tuple[VideoBackend, str]:
    """Pick the video backend for a run and say why, in one plain line.

    One branch per backend: `motion` and `diffusers` are honoured as asked; `auto` takes --video-model, else
    the default video model when a CUDA GPU and its cached weights are here, else the offline camera moves.
    `manager` returns the run's ModelManager (shared with its image backend); called only for diffusers.
    """
    from tools.models import DEFAULT_VIDEO_MODEL, ManagerConfig, ModelManager, ready_on_gpu

    def diffusers(model: str) -> DiffusersVideoBackend:
        owner = manager() if manager else ModelManager.from_config(settings.config(ManagerConfig))
        return DiffusersVideoBackend(model, owner, settings.num_inference_steps)

    choice = settings.video_backend
    if choice == "motion":
        return MotionBackend(), "motion: asked for with --video-backend motion; camera moves over the still"
    if choice == "diffusers":
        model = settings.video_model or DEFAULT_VIDEO_MODEL
        return diffusers(model), f"diffusers: {model} (asked for)"
    if settings.video_model:
        return diffusers(settings.video_model), f"diffusers: {settings.video_model} (--video-model)"
    if ready_on_gpu(DEFAULT_VIDEO_MODEL):
        return diffusers(
            DEFAULT_VIDEO_MODEL
        ), f"diffusers: {DEFAULT_VIDEO_MODEL} (CUDA GPU and cached weights found)"
    return MotionBackend(), (
        f"motion: no --video-model, and no CUDA GPU with {DEFAULT_VIDEO_MODEL} in the Hugging "
        "Face cache; camera moves over the still with ffmpeg"
    )
