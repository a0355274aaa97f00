"""The comparison table: one row per method from its run's results.json, printed and written as markdown."""
from __future__ import annotations

HEADERS = ('method', 'epochs (budget)', 'batch', 'params: model', 'params: trained', 'train time', 'EER %',
           'minDCF(0.01)', 'minDCF(0.05)')

COUNTED = ('params: model = student + back-end, the exported speaker model. params: trained = every parameter some '
           'phase optimised (KD heads and speaker classifier included; for postcomp also the fine-tuned teacher copy '
           'and its back-end). train time (m:ss) = wall-clock time of every phase\'s training epochs with their '
           'per-epoch validation, summed over resumed sessions (model loading and the final evaluation excluded). '
           'EER and minDCF: the final evaluation (full + TTA scores) of the last phase\'s best epoch.')


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
    return [results['method'], budget(results['phases']), str(results['batch_size']),
            count(results['params']['model']), count(results['params']['trained']),
            duration(results['train_seconds']['total']), f"{final['eer']:.2f}", f"{final['min_dcf_0.01']:.4f}",
            f"{final['min_dcf_0.05']:.4f}"]


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
