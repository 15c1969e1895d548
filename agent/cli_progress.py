"""What a command shows on the console: the brief's reading, the backend each tool got and why, and the
progress of the takes and clips as the graph reports them."""

from __future__ import annotations


def print_reading(brief, console) -> None:
    from agent.flags import describe_reading

    line = describe_reading(brief.reading)
    if line:
        console.print(f"[bold]brief[/]    read from the brief: {line}")


def print_backends(settings, console) -> None:
    from agent.nodes import backends
    from tools.plan import planner_description

    chosen = backends(settings)
    console.print(f"[bold]plan[/]     {planner_description(settings)}")
    console.print(f"[bold]render[/]   {chosen['image_why']}")
    console.print(f"[bold]animate[/]  {chosen['video_why']}")
    if settings.reference or settings.anchor:
        from tools.generate_image import reference_mode

        console.print(f"[bold]refs[/]     {reference_mode(chosen['image'])}")
    if chosen["image"].name == "draft":
        console.print("[yellow]Draft mode: shots are storyboard panels, not final images.[/]")
    from rich.markup import escape

    from tools.voice import VoiceConfig, voice_description

    voice = escape(voice_description(settings.lang or "en", settings.config(VoiceConfig)))
    console.print(f"[bold]voice[/]    {'[yellow]' if 'SCRATCH' in voice else ''}{voice}", highlight=False)
    if settings.music:
        from tools.mix import check_music

        _, why = check_music(settings.music)
        console.print(f"[bold]music[/]    {escape(why or settings.music)}", highlight=False)


class Progress:
    """Shows takes and clips as the graph's update stream reports them: a live bar on a terminal, else one plain
    line per event (a log file or a pipe gets every step as it happens, not one bar at the end)."""

    def __init__(self, console, shots: int):
        self.console, self.total, self.takes, self.clips = console, shots, 0, 0
        self.bar = None
        if console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=console, transient=False,
            )  # fmt: skip
            self.shots = self.bar.add_task("shots", total=shots or None)

    def __enter__(self):
        if self.bar:
            self.bar.start()
        return self

    def __exit__(self, *exc):
        if self.bar:
            self.bar.stop()

    def _say(self, line: str) -> None:
        if self.bar is None:
            self.console.print(line, markup=False, highlight=False)

    def __call__(self, node: str, update: dict) -> None:
        if node == "progress" and update.get("planner"):
            self.console.print(f"plan: {update['planner']}", markup=False, highlight=False)
        elif node == "plan" and update.get("storyboard"):
            self.total = len(update["storyboard"].shots)
            if self.bar:
                self.bar.update(self.shots, total=self.total)
            self._say(f"plan: {self.total} shots")
        elif node == "render":
            self.takes += 1
            if self.bar:
                self.bar.update(self.shots, description=f"shots ({self.takes} takes)")
            self._say(f"render: take {self.takes}")  # the shot branch's updates do not name the shot
        elif node == "animate":
            self.clips += 1
            if self.bar:
                self.bar.advance(self.shots)
            for result in update.get("results", []):
                self._say(f"animate: {result.shot_id} ({self.clips}/{self.total or '?'} shots)")
        elif node in ("cut", "report"):
            self.console.print(f"{node}: done")
