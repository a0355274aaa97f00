"""Data preparation commands. `convert` decodes every .m4a below SRC (VoxCeleb2 as distributed, AAC) into 16 kHz
mono 16-bit .wav at the same relative path below DST, with ffmpeg, in parallel:

    python -m data.prepare convert /data/voxceleb2/dev/aac /data/voxceleb2/dev/wav --workers 16

Resumable: an output that exists and whose length matches its source is skipped; each new output is decoded to a
hidden partial file, checked against the source's duration (ffprobe) and only then renamed into place, so an
interrupted run never leaves a truncated .wav. An existing output of the wrong length is reported, never replaced.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Callable

import soundfile as sf
from tqdm import tqdm

from data.audio import SAMPLE_RATE
from utils.errors import ArgumentParser, exit_on_user_error

LENGTH_TOLERANCE_S = 0.1  # decoded vs. container duration: AAC frames are 1024 samples (64 ms at 16 kHz)
SOURCE_EXTENSION = '.m4a'
IN_FLIGHT_PER_WORKER = 4  # files queued per worker thread


def find_sources(src: str) -> list[str]:
    """Paths of every .m4a below `src`, relative to it, sorted."""
    found = []
    for folder, _, files in os.walk(src, followlinks=True):
        found.extend(os.path.relpath(os.path.join(folder, f), src) for f in files
                     if f.lower().endswith(SOURCE_EXTENSION))
    return sorted(found)


def output_of(relative: str) -> str:
    """The .wav path (relative) of a source file."""
    return relative[:-len(SOURCE_EXTENSION)] + '.wav'


def source_seconds(path: str) -> float:
    """Duration of an audio file as its container states it (ffprobe)."""
    done = subprocess.run(['ffprobe', '-v', 'error', '-show_entries', 'format=duration', '-of',
                           'default=noprint_wrappers=1:nokey=1', path], capture_output=True, text=True)
    try:
        return float(done.stdout.strip())
    except ValueError:
        raise ValueError(f"ffprobe cannot read the duration of {path}: {done.stderr.strip() or done.stdout.strip()}")


def length_problem(wav: str, seconds: float) -> str:
    """Why `wav` is not a complete 16 kHz mono decoding of a `seconds`-long source, or '' when it is."""
    try:
        info = sf.info(wav)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        return f"unreadable ({err})"
    if (info.samplerate, info.channels) != (SAMPLE_RATE, 1):
        return f"{info.samplerate} Hz, {info.channels} channel(s) instead of {SAMPLE_RATE} Hz mono"
    if abs(info.frames / SAMPLE_RATE - seconds) > LENGTH_TOLERANCE_S:
        return f"{info.frames / SAMPLE_RATE:.3f} s long but the source lasts {seconds:.3f} s"
    return ''


def convert_file(source: str, target: str) -> tuple[str, str]:
    """Convert one file; returns (outcome, detail) with outcome 'converted', 'skipped' (a verified output exists)
    or 'failed'."""
    try:
        seconds = source_seconds(source)
    except ValueError as err:
        return 'failed', str(err)
    if os.path.exists(target):
        problem = length_problem(target, seconds)
        if problem:
            return 'failed', f"{target} exists but is {problem}; remove it to convert {source} again"
        return 'skipped', ''
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    partial = os.path.join(folder, f".{os.path.basename(target)}.partial.wav")
    done = subprocess.run(['ffmpeg', '-nostdin', '-hide_banner', '-v', 'error', '-y', '-i', source, '-vn', '-ac',
                           '1', '-ar', str(SAMPLE_RATE), '-c:a', 'pcm_s16le', '-f', 'wav', partial],
                          capture_output=True, text=True)
    problem = f"ffmpeg failed: {done.stderr.strip()[-300:]}" if done.returncode else length_problem(partial, seconds)
    if problem:
        if os.path.exists(partial):
            os.unlink(partial)
        return 'failed', f"{source}: {problem}"
    os.replace(partial, target)
    return 'converted', ''


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def convert(src: str, dst: str, workers: int) -> tuple[dict[str, int], list[str]]:
    """Convert every .m4a below `src` into .wav below `dst` with `workers` parallel ffmpeg processes; returns the
    count per outcome and the reason of each failure. Prints a progress bar and a summary."""
    if not os.path.isdir(src):
        raise SystemExit(f"SRC {src!r} is not a folder; expected the .m4a tree (<speaker>/<video>/<utt>.m4a)")
    if _inside(src, dst):
        raise SystemExit(f"DST {dst!r} holds SRC {src!r}: training roots may not contain .m4a files, so the .wav "
                         f"tree needs a folder of its own")
    if workers < 1:
        raise SystemExit(f"--workers must be at least 1, got {workers}")
    missing = [tool for tool in ('ffmpeg', 'ffprobe') if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"convert needs {' and '.join(missing)} on PATH (e.g. apt-get install ffmpeg, or conda "
                         f"install -c conda-forge ffmpeg)")
    sources = find_sources(src)
    if not sources:
        raise SystemExit(f"no {SOURCE_EXTENSION} files below {src!r}")
    counts, failures = {'converted': 0, 'skipped': 0, 'failed': 0}, []
    with ThreadPoolExecutor(max_workers=workers) as pool, \
            tqdm(total=len(sources), unit='file', desc='convert', file=sys.stderr) as progress:

        def record(done: set) -> None:
            for job in done:
                outcome, detail = job.result()
                counts[outcome] += 1
                if outcome == 'failed':
                    failures.append(detail)
            progress.update(len(done))

        pending: set = set()
        for relative in sources:  # a bounded window of queued files, not a million futures at once
            if len(pending) >= IN_FLIGHT_PER_WORKER * workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                record(done)
            pending.add(pool.submit(convert_file, os.path.join(src, relative), os.path.join(dst, output_of(relative))))
        record(wait(pending).done)
    print(f"{counts['converted']:,} converted, {counts['skipped']:,} already done (verified), {counts['failed']:,} "
          f"failed, of {len(sources):,} .m4a files below {src} -> {dst}")
    for detail in sorted(failures)[:20]:
        print(f"  failed: {detail}")
    return counts, failures


def _convert_command(args: argparse.Namespace) -> int:
    return 1 if convert(args.src, args.dst, args.workers)[1] else 0


# Sub-commands: name -> (help, add its arguments, run it returning the exit status).
def _convert_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('src', help='root of the .m4a tree (e.g. voxceleb2/dev/aac)')
    parser.add_argument('dst', help='root of the .wav tree to write (same relative paths)')
    parser.add_argument('--workers', type=int, default=os.cpu_count() or 1, help='parallel ffmpeg processes')


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    'convert': ('decode .m4a (VoxCeleb2) into 16 kHz mono .wav, resumable', _convert_arguments, _convert_command),
}


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog='python -m data.prepare', description=__doc__.split('\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)
    for name, (text, add_arguments, _) in COMMANDS.items():
        add_arguments(commands.add_parser(name, help=text))
    args = parser.parse_args(argv)
    return COMMANDS[args.command][2](args)


if __name__ == '__main__':
    sys.exit(exit_on_user_error(main))
