"""The paper's comparison in one command: os_kdft2, os_kdft, precomp and postcomp on the same data with the same
seed and arguments, each as its own run, then one table.

    python -m trainer.compare                        # built-in demo: 10 epochs each (baselines: 5 KD + 5 FT)
    python -m trainer.compare path_train=/data/vox1/dev/wav path_test=... path_trials=... path_libri=... [key=value]

Every key=value applies to every method (method recipes and the demo's per-method budget still apply to the keys
not given); `name` (default 'compare') prefixes the runs, `<name>_<method>` in path_log/project. A finished run
(it has results.json) is reused, an unfinished one is resumed, a missing one is started: nothing is overwritten,
so running the command again after an interruption continues where it stopped. The table is printed and written to
path_log/project/<name>_table.md.
"""
from __future__ import annotations

import json
import os
import sys
import time

import main
from arguments import EXPERIMENT_ARGS, SYSTEM_ARGS, get_args, is_demo, parse_overrides
from utils.atomic import atomic_write_bytes
from trainer import checkpoint
from trainer.compare_table import report

COMPARED = ('os_kdft2', 'os_kdft', 'precomp', 'postcomp')
DEFAULT_PREFIX = 'compare'
DEMO_NOTE = ('Built-in demo: synthetic voices and a tiny teacher with RANDOM weights. These numbers show that the four '
             'methods run end to end in one code base; they do not rank the methods (the teacher knows nothing to '
             'distil, and a few epochs on 40 synthetic speakers decide nothing).')
OWN_KEYS = ('method', 'resume')  # the comparison sets these per run


def method_arguments(argv: list[str], method: str, prefix: str) -> list[str]:
    """The main.py arguments of one method's run: the user's keys, the method, the run name."""
    kept = [a for a in argv if a.split('=', 1)[0].strip() != 'name']
    return [*kept, f'method={method}', f'name={prefix}_{method}']


def load_results(run_dir: str, method: str) -> dict:
    """results.json of a finished run, checked to be `method`'s."""
    with open(os.path.join(run_dir, 'results.json')) as f:
        results = json.load(f)
    if results.get('method') != method:
        raise SystemExit(f"{run_dir}/results.json is a {results.get('method')!r} run, expected {method!r}; "
                         f"choose another name=")
    return results


def run_method(argv: list[str], method: str, run_dir: str) -> dict | None:
    """Reuse, resume or start one method's run; its results, or None when a signal stopped it."""
    if os.path.isfile(os.path.join(run_dir, 'results.json')):
        print(f'{method}: finished run {run_dir} reused', flush=True)
        return load_results(run_dir, method)
    if os.path.isfile(os.path.join(run_dir, checkpoint.LAST)):
        print(f'{method}: unfinished run {run_dir} resumed', flush=True)
        main.main([*argv, 'resume=True'])
    elif os.path.exists(run_dir):
        raise SystemExit(f'{run_dir} exists but holds no checkpoint (it stopped before its first epoch ended) and '
                         f'is never overwritten: move it away, or compare under another name=')
    else:
        print(f'{method}: new run {run_dir}', flush=True)
        main.main(argv)
    return load_results(run_dir, method) if os.path.isfile(os.path.join(run_dir, 'results.json')) else None


def compare(argv: list[str]) -> str | None:
    """Run (or reuse) every method, then print and write the table; returns the markdown (None if interrupted)."""
    overrides = parse_overrides(argv, {**SYSTEM_ARGS, **EXPERIMENT_ARGS})
    own = [key for key in OWN_KEYS if key in overrides]
    if own:
        raise SystemExit(f"argument {own[0]!r}: the comparison sets it for each run itself; leave it out")
    prefix = overrides.get('name', DEFAULT_PREFIX)
    args = get_args(argv)
    folder = os.path.join(args['path_log'], args['project'])
    started, results = time.time(), []
    for method in COMPARED:
        out = run_method(method_arguments(argv, method, prefix), method, os.path.join(folder, f'{prefix}_{method}'))
        if out is None:
            print(f'comparison stopped during {method}; run the same command again to resume it', flush=True)
            return None
        results.append(out)
    trial_list = next(iter(results[0]['final']))
    notes = [DEMO_NOTE] if is_demo(args) else []
    text = report(results, trial_list, notes)
    path = os.path.join(folder, f'{prefix}_table.md')
    atomic_write_bytes(path, text.encode('utf-8'))
    print('\n' + text, flush=True)
    print(f'table written to {path}; this command took {time.time() - started:.0f} s', flush=True)
    return text


if __name__ == '__main__':
    compare(sys.argv[1:])
