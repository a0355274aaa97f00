"""A demo epoch with torch's own thread count, with num_threads=0 (the default) and with one thread, side by side.

Each setting runs `python main.py epoch=1 num_threads=N` (the built-in demo, plus the `key=value` arguments given
with `--demo`) in a fresh process with a temporary path_log, the settings alternating their order on each repeat.
Reported per setting: the intra-op threads the run used, its epoch seconds (the per-epoch line; median over repeats)
and its final EER (the thread count changes the order of float sums, so its last digits may differ). 'cores' stands for torch's own default, one thread per usable core.

    python bench/threads.py [--settings cores 0 1] [--repeats 1] [--demo 'key=value ...']
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import re
import statistics
import subprocess
import tempfile

from bench.common import at_least, print_table
from utils.errors import ArgumentParser, UserError, exit_on_user_error
from utils.threads import usable_cores

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCH_LINE = re.compile(r'^epoch +1 \|.* \| (\d+) s$', re.M)  # trainer/loop.py: report_epoch
THREADS_LINE = re.compile(r'^intra-op threads per process: (\d+) ', re.M)  # utils/threads.py
FINAL_LINE = re.compile(r'^final Vox1-O .*EER ([0-9.]+) %', re.M)  # trainer/run.py: final_lines


def setting_threads(setting: str) -> int:
    """The num_threads value of a setting: 'cores' → every usable core (torch's own default), else the number."""
    return usable_cores() if setting == 'cores' else int(setting)


def demo_epoch(threads: int, extra: list[str], folder: str, name: str) -> dict[str, float]:
    """One demo run of one epoch with num_threads=threads: the threads it reported, its epoch seconds, final EER."""
    argv = [sys.executable, 'main.py', 'epoch=1', f'num_threads={threads}', f'path_log={folder}', f'name={name}',
            *extra]
    done = subprocess.run(argv, cwd=REPOSITORY, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed (exit status {done.returncode}):\n{done.stdout}\n{done.stderr}")
    found = [pattern.search(done.stdout) for pattern in (THREADS_LINE, EPOCH_LINE, FINAL_LINE)]
    if not all(found):
        raise RuntimeError(f'the demo printed no threads / epoch / final line:\n{done.stdout}')
    used, seconds, eer = (float(match.group(1)) for match in found)
    return {'threads': used, 'seconds': seconds, 'eer': eer}


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--settings', nargs='+', default=['cores', '0', '1'],
                        help="num_threads values to compare ('cores' = torch's default, one per core)")
    parser.add_argument('--repeats', type=at_least(1), default=1, help='runs per setting (median epoch seconds)')
    parser.add_argument('--demo', default='', help="more main.py arguments, e.g. --demo 'crop_size=8000 seg_size=8000'")
    args = parser.parse_args(argv)
    extra = args.demo.split()
    bad = [s for s in args.settings if s != 'cores' and not s.isdigit()]
    if bad:
        raise UserError(f"--settings {bad[0]}: expected 'cores' or a number of threads >= 0")
    print(f'{usable_cores()} usable cores, load average {", ".join(f"{x:.2f}" for x in os.getloadavg())}; demo '
          f"arguments: epoch=1 {' '.join(extra)}", flush=True)
    runs: dict[str, list[dict[str, float]]] = {s: [] for s in args.settings}
    with tempfile.TemporaryDirectory(prefix='bench_threads_') as folder:
        for repeat in range(args.repeats):
            order = args.settings if repeat % 2 == 0 else args.settings[::-1]
            for setting in order:
                out = demo_epoch(setting_threads(setting), extra, folder, f'threads_{setting}_{repeat}')
                runs[setting].append(out)
                print(f'num_threads={setting}: {out}', flush=True)
    rows = [[f'num_threads={s}' + (' (torch default)' if s == 'cores' else ' (default)' if s == '0' else ''),
             f"{runs[s][0]['threads']:.0f}", f"{statistics.median(r['seconds'] for r in runs[s]):.0f}",
             f"{runs[s][0]['eer']:.2f}"] for s in args.settings]
    print_table('a demo epoch by intra-op threads per process', ['setting', 'threads', 'epoch s', 'final EER %'], rows)


if __name__ == '__main__':
    exit_on_user_error(main)
