"""Helpers shared by the benchmark scripts: device choice, interleaved repeated timing, peak memory, tables.

Timing: every case is run `warmup` times, then the cases take turns for `repeats` rounds (A B C, A B C, ...), so
load from other processes hits every case alike; a figure is the median of its rounds (the best round is shown
too: other processes only ever add time), and the spread (max - min) / median says how noisy it was. GPU work is
synchronised before each clock reading. On a CPU shared with other processes pass `--threads 1`: with more torch
threads than free cores every small op waits for a descheduled thread, which swamps the measured differences.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Hashable, TypeVar

import torch

Key = TypeVar('Key', bound=Hashable)
_STATUS = '/proc/self/status'
_CLEAR_REFS = '/proc/self/clear_refs'


def at_least(low: float, kind: type = int, why: str = '') -> Callable[[str], float]:
    """An argparse `type`: a number of `kind` >= low, else a one-line error saying what is expected (and `why`)."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected {"an int" if kind is int else "a number"}, got {text!r}')
        if value < low:
            reason = f' ({why})' if why else ''
            raise argparse.ArgumentTypeError(f'expected a value >= {low:g}{reason}, got {text}')
        return value
    return parse


def add_runtime_args(parser: argparse.ArgumentParser, repeats: int, warmup: int = 1) -> None:
    """The options every script shares: device, CPU threads, measured rounds and warm-up runs."""
    parser.add_argument('--device', default='auto', help="'auto' (GPU when visible), 'cpu', 'cuda' (= cuda:0) or "
                        "'cuda:N'")
    parser.add_argument('--threads', type=at_least(0), default=0, help='torch CPU threads (0 = torch default)')
    by_device = ' (0 = by device)' if repeats == 0 else ''
    parser.add_argument('--repeats', type=at_least(0 if by_device else 1), default=repeats,
                        help=f'measured rounds, figures are medians{by_device}')
    parser.add_argument('--warmup', type=at_least(0), default=warmup,
                        help=f'unmeasured runs of each case first{by_device}')


def apply_runtime_args(args: argparse.Namespace) -> torch.device:
    """Set the thread count, print the machine line, return the device."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    print(machine_line(device))
    return device


def pick_device(name: str) -> torch.device:
    """'auto' → the first GPU when one is visible, else the CPU; otherwise the named device, a GPU always with its
    index ('cuda' is 'cuda:0'), as torch.cuda.set_device and a process group's device_id need it."""
    if name == 'auto':
        return torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')
    device = torch.device(name)
    if device.type == 'cuda' and device.index is None:
        return torch.device('cuda', 0)
    return device


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a clock reading covers it (no-op on CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def machine_line(device: torch.device) -> str:
    """One line naming the hardware, the torch build, its threads and the current load (a noise indicator)."""
    if device.type == 'cuda':
        hardware = torch.cuda.get_device_name(device)
    else:
        with open('/proc/cpuinfo', encoding='utf-8') as handle:
            names = [line.split(':', 1)[1].strip() for line in handle if line.startswith('model name')]
        hardware = names[0] if names else platform.processor() or 'CPU'
    load = ', '.join(f'{x:.2f}' for x in os.getloadavg())
    return (f'device {device} ({hardware}), {os.cpu_count()} CPU cores, torch {torch.__version__}, '
            f'{torch.get_num_threads()} threads, load average {load}')


@dataclass
class Series:
    """Repeated readings of one quantity."""
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def best(self) -> float:
        """The smallest reading: on a shared machine, load from other processes only ever adds time."""
        return min(self.values)

    @property
    def spread(self) -> float:
        """(max - min) / median: 0 for perfectly steady readings."""
        return (max(self.values) - min(self.values)) / self.median if self.median else 0.0


def discard(fn: Callable, *args) -> Callable[[], None]:
    """A case for run_interleaved that calls fn(*args) and drops its result."""
    def run() -> None:
        fn(*args)
    return run


def run_interleaved(cases: dict[Key, Callable[[], dict[str, float] | None]], repeats: int, warmup: int,
                    device: torch.device) -> dict[Key, dict[str, Series]]:
    """Time every case `repeats` times, taking turns; per case, 'total' (wall seconds) plus whatever it returns."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    results: dict[Key, dict[str, Series]] = {name: {} for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            synchronize(device)
            start = time.perf_counter()
            extra = fn() or {}
            synchronize(device)
            readings = {'total': time.perf_counter() - start, **extra}
            for key, value in readings.items():
                results[name].setdefault(key, Series()).values.append(value)
    return results


def _status_kib(field_name: str) -> int:
    """A memory field of /proc/self/status in KiB (VmRSS, VmHWM, ...)."""
    with open(_STATUS, encoding='utf-8') as handle:
        for line in handle:
            if line.startswith(field_name + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{_STATUS} has no {field_name} field')


class PeakMemory:
    """Peak memory of the enclosed block above its start: CUDA allocator bytes on GPU, resident set (RSS) on CPU.

    On CPU the kernel's RSS high-water mark (VmHWM) is reset through /proc/self/clear_refs at the start, so the
    reading covers this block only; `.peak` is the absolute high-water mark, `.delta` the rise above the start.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = self.delta = 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == 'cuda':
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
        else:
            with open(_CLEAR_REFS, 'w', encoding='utf-8') as handle:
                handle.write('5')  # reset the peak RSS to the current RSS
            self.start = _status_kib('VmRSS') * 1024
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == 'cuda':
            synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self.peak = _status_kib('VmHWM') * 1024
        self.delta = self.peak - self.start


def gib(num_bytes: float) -> str:
    return f'{num_bytes / 2 ** 30:.2f}'


def ms(seconds: float) -> str:
    return f'{seconds * 1e3:.1f}'


def pct(fraction: float) -> str:
    return f'{fraction * 100:.0f}%'


def print_table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    """Print a markdown table under a bold title."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]

    def line(cells: list[str]) -> str:
        return '| ' + ' | '.join(f'{str(c):<{w}}' for c, w in zip(cells, widths)) + ' |'

    print(f'\n**{title}**\n')
    print(line(headers))
    print('|' + '|'.join('-' * (w + 2) for w in widths) + '|')
    for row in rows:
        print(line(row))
