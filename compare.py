"""The paper's comparison in one command: os_kdft2, os_kdft, precomp and postcomp on the same data with the same
seed and arguments, each as its own run, then one table.

    python compare.py                        # built-in demo: 10 epochs each (baselines: 5 KD + 5 FT)
    python compare.py path_train=/data/vox1/dev/wav path_test=... path_trials=... path_libri=... [key=value]

Every key=value applies to every method (method recipes and the demo's per-method budget still apply to the keys
not given); `name` (default 'compare') prefixes the runs, `<name>_<method>` in path_log/project. A finished run
(it has results.json) is reused and an unfinished one resumed only when it was started with the same arguments
(otherwise the command names the keys that differ and stops), a missing one is started: nothing is overwritten, so
running the command again after an interruption continues where it stopped. The table is printed and written to
path_log/project/<name>_table.md.
"""
from __future__ import annotations

import json
import os
import sys
import time

import main
from arguments import ARGUMENTS_FILE, EXPERIMENT_ARGS, HELP_FLAGS, SYSTEM_ARGS, differing_arguments, get_args, \
    is_demo, parse_overrides, print_help
from trainer import checkpoint
from trainer.methods import METHODS
from utils.atomic import atomic_write_bytes
from utils.errors import exit_on_user_error

COMPARED = tuple(METHODS)
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


def check_recorded(run_dir: str, argv: list[str]) -> None:
    """Stop, naming every differing key, when the run in `run_dir` was started with other arguments than `argv`'s."""
    path = os.path.join(run_dir, ARGUMENTS_FILE)
    if not os.path.isfile(path):
        raise SystemExit(f'{run_dir} records no {ARGUMENTS_FILE}, so it cannot be checked to match this comparison; '
                         f'compare under another name=')
    with open(path) as f:
        changed, _ = differing_arguments(json.load(f), get_args(argv))
    if changed:
        raise SystemExit(f"{run_dir} was run with other arguments than this comparison asks for "
                         f"({'; '.join(changed)}); it is never overwritten: compare under another name=, or pass the "
                         f"same arguments")


def run_method(argv: list[str], method: str, run_dir: str) -> dict | None:
    """Reuse, resume or start one method's run; its results, or None when a signal stopped it."""
    if os.path.isfile(os.path.join(run_dir, 'results.json')):
        check_recorded(run_dir, argv)
        print(f'{method}: finished run {run_dir} reused', flush=True)
        return load_results(run_dir, method)
    if os.path.isfile(os.path.join(run_dir, checkpoint.LAST)):
        check_recorded(run_dir, argv)
        print(f'{method}: unfinished run {run_dir} resumed', flush=True)
        main.main([*argv, 'resume=True'])
    else:  # a directory without checkpoint is no run: main.py keeps its files aside and starts it
        print(f'{method}: new run {run_dir}', flush=True)
        main.main(argv)
    return load_results(run_dir, method) if os.path.isfile(os.path.join(run_dir, 'results.json')) else None


def compare(argv: list[str]) -> str | None:
    """Run (or reuse) every method, then print and write the table; returns the markdown (None if interrupted)."""
    if any(item in HELP_FLAGS for item in argv):
        print_help('python compare.py', about=__doc__)
        raise SystemExit(0)
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


HEADERS = ('method', 'epochs (budget)', 'batch', 'params: model', 'params: trained', 'train time', 'EER %',
           'minDCF(0.01)', 'minDCF(0.05)', 'teacher EER %')

COUNTED = ('params: model = student + back-end, the exported speaker model. params: trained = every parameter some '
           'phase optimised (KD heads and speaker classifier included; for postcomp also the fine-tuned teacher copy '
           'and its back-end). train time (m:ss) = wall-clock time of every phase\'s training epochs with their '
           'per-epoch validation, summed over resumed sessions (model loading and the final evaluation excluded). '
           'EER and minDCF: the final evaluation (full + TTA scores) of the last phase\'s best epoch. teacher EER: '
           'postcomp\'s fine-tuned teacher, evaluated the same way before it is compressed.')


def count(n: int) -> str:
    """A parameter count for people: 23.49 M, 56.2 k, 812."""
    if n >= 1_000_000:
        return f'{n / 1e6:.2f} M'
    if n >= 1_000:
        return f'{n / 1e3:.1f} k'
    return str(n)


def duration(seconds: float) -> str:
    """Seconds as 'h:mm:ss' (or 'm:ss' under an hour)."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f'{hours}:{minutes:02d}:{secs:02d}' if hours else f'{minutes}:{secs:02d}'


def budget(phases: dict[str, dict]) -> str:
    """Epochs per phase: '10' for one phase, '5 kd + 5 ft' for two."""
    if len(phases) == 1:
        return str(next(iter(phases.values()))['epochs'])
    return ' + '.join(f"{p['epochs']} {name}" for name, p in phases.items())


def row(results: dict) -> list[str]:
    """The table row of one run's results.json (the first trial list's full + TTA metrics)."""
    final = next(iter(results['final'].values()))['full_tta']
    teachers = [next(iter(p['final'].values()))['full_tta']['eer'] for p in results['phases'].values() if 'final' in p]
    return [results['method'], budget(results['phases']), str(results['batch_size']),
            count(results['params']['model']), count(results['params']['trained']),
            duration(results['train_seconds']['total']), f"{final['eer']:.2f}", f"{final['min_dcf_0.01']:.4f}",
            f"{final['min_dcf_0.05']:.4f}", f'{teachers[0]:.2f}' if teachers else '—']


def markdown(rows: list[list[str]]) -> str:
    """A markdown table with HEADERS, columns padded to line up as plain text too."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)]

    def line(cells) -> str:
        return '| ' + ' | '.join(c.ljust(w) for c, w in zip(cells, widths)) + ' |'

    return '\n'.join([line(HEADERS), '|' + '|'.join('-' * (w + 2) for w in widths) + '|', *map(line, rows)])


def report(results: list[dict], trial_list: str, notes: list[str]) -> str:
    """The whole markdown report: title, table, what is counted, and the caller's notes."""
    table = markdown([row(r) for r in results])
    return '\n\n'.join([f'## Method comparison (final evaluation on Vox1-{trial_list})', table, COUNTED, *notes]) + '\n'


if __name__ == '__main__':
    exit_on_user_error(lambda: compare(sys.argv[1:]))
