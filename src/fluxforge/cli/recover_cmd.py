"""`fluxforge recover`: seal the raw segments interrupted runs left and rebuild their dates' features."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from fluxforge_common.config.settings import FluxForgeSettings
from fluxforge_common.dataset.interrupted import RunInProgressError, find_interrupted
from fluxforge_common.pipeline.recovery import Recovery, recover
from fluxforge_common.stopping import ReadStop, StopRequests
from fluxforge_common.storage.space import DISK_FULL_STATUS, DiskFullError
from fluxforge_common.writers.frames import CorruptSegmentError

from fluxforge.cli.common import ConfigOption, settings_or_exit
from fluxforge.cli.report import run_progress


def recover_command(
    root: Annotated[Path | None, typer.Argument(help="Dataset root (default: storage.root).")] = None,
    config: ConfigOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress line.")] = False,
) -> None:
    """Recover what interrupted `fluxforge run`s left: seal their raw segments (a torn tail is cut)
    and rebuild the features of their dates from the archive, as `fluxforge reprocess` does."""
    settings = settings_or_exit(config)
    base = root or settings.storage.root
    if not base.exists():
        typer.echo(f"{base} does not exist", err=True)
        raise typer.Exit(2)
    typer.echo(recovery_text(recover_or_exit(settings, base, quiet=quiet), base))


def recover_or_exit(settings: FluxForgeSettings, root: Path, *, quiet: bool = False) -> Recovery:
    """`recover`, or exit 1 with what to do when a run is writing there or a segment is damaged;
    a stop (SIGTERM, Ctrl-C) ends the rebuild between two lines and exits 0, saying what is left."""
    with run_progress(time.monotonic(), quiet=quiet) as progress:
        read_stop = ReadStop()
        try:
            with StopRequests(
                read_stop.stop,
                deadline_s=settings.embedded.stop_deadline_s,
                setting="embedded.stop_deadline_s",
                doing="writing what was rebuilt (earlier files are replaced only once it has read everything)",
                then=f"Run `fluxforge recover {root}` again to finish it.",
            ):
                recovery = recover(settings, root, on_progress=progress, read_stop=read_stop)
        except (RunInProgressError, CorruptSegmentError) as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
        except DiskFullError as exc:
            exit_disk_full(exc, root)
        if progress is not None and recovery.summary is not None:
            progress(recovery.summary)
    if recovery.cut_short:
        typer.echo(
            f"Recovery of {root} stopped before the end: the raw archive is sealed; the features of "
            f"{', '.join(recovery.dates)} stay as they are (earlier files beside those rebuilt so far) until "
            f"`fluxforge recover {root}` runs to the end.",
            err=True,
        )
        raise typer.Exit(0)
    return recovery


def recovery_text(recovery: Recovery, root: Path) -> str:
    """The report of a recovery: segments sealed, ticks kept, bytes cut, dates rebuilt."""
    if not recovery.segments and not recovery.runs:
        return f"{root}: nothing to recover"
    kept = sum(s.kept for s in recovery.segments)
    lines = [
        f"Recovered {root}: {recovery.runs} interrupted run(s); sealed {len(recovery.segments)} raw "
        f"segment(s) holding {recovery.ticks:,} ticks ({kept:,} bytes kept, {recovery.bytes_cut:,} "
        "bytes of torn tail cut)"
    ]
    lines += [
        f"  {s.path}: {s.lines:,} ticks, {s.cut:,} bytes cut"
        + ("" if s.kept else " (no whole frame: removed)")
        for s in recovery.segments
    ]
    if recovery.dates and recovery.summary is not None:
        written = sum(recovery.summary.rows.values())
        lines.append(
            f"Rebuilt the features of {', '.join(recovery.dates)} from the archive: {written:,} rows "
            f"written, {len(recovery.replaced)} earlier file(s) replaced"
        )
    return "\n".join(lines)


def recover_before_run(settings: FluxForgeSettings, root: Path, *, quiet: bool = False) -> None:
    """Before `fluxforge run` writes into `root`, recover what interrupted runs left there."""
    if not root.exists():
        return
    found = find_interrupted(root)
    if found.running:
        typer.echo(
            f"warning: a run is writing into {root} (journal {found.running[0]}); nothing recovered now",
            err=True,
        )
        return
    if not found:
        return
    if not quiet:
        typer.echo(f"Recovering what an interrupted run left in {root} first", err=True)
    recovery = recover_or_exit(settings, root, quiet=quiet)
    if recovery.segments or recovery.runs:
        typer.echo(recovery_text(recovery, root), err=True)
    if recovery.stopped:  # asked to stop while recovering: the run does not start
        raise typer.Exit(0)


def exit_disk_full(
    exc: DiskFullError, root: Path, *, recover_after: bool = True, read_again: int = 0
) -> NoReturn:
    """End a command the full disk of `root` stopped: what happened, what is kept, what to do.

    `read_again`: the ticks a run of a file or the simulator had read, which running the same input
    into `root` again would archive a second time.
    """
    if recover_after:
        then = (
            f"Every file written so far is kept. Free space there, then run `fluxforge recover {root}`"
            + ("" if read_again else " (or `fluxforge run` into it again, which recovers first)")
            + ": it seals the raw archive and rebuilds the features from it."
        )
    else:
        then = "Everything read so far is written. Free space there (or lower storage.min_free_mb)" + (
            "." if read_again else ", then run again."
        )
    if read_again:
        then += (
            f" Its {read_again:,} ticks read are in {root}: to process the rest of the input, run it into "
            f"another root (into {root} again, those ticks would be archived and counted twice)."
        )
    typer.echo(f"\n{exc}: stopped. {then}", err=True)
    raise typer.Exit(DISK_FULL_STATUS)
