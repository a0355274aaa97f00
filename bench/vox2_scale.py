"""Training data at VoxCeleb2 scale: the compact cached UtteranceIndex against the list of Utterance objects this
project used before (a faithful copy is kept below as the reference), on a VoxCeleb2-sized tree.

The tree: `--files` utterances in the real <speaker>/<video>/<utt>.wav layout (VoxCeleb2 dev proportions: 5,994
speakers, 7.5 utterances per video), made cheaply of hard links to a few real generated .wav files; deleted at the
end. Each measurement is a fresh process (python + torch start included) that lists the tree, builds the training set
and iterates a shuffled DataLoader with `--workers` workers over it with a data-free item function (the item's
training path, its label and a VoxCeleb KD path are looked up exactly as the real set does, no audio is read):
  - seconds to build the index + training set, and from process start to the first batch (median of `--repeats`
    starts); 'cold' = no index cache (the OS file cache is warm, as on a machine that just wrote or read the
    tree), 'warm' = restart with the index cached (the old approach has no cache: it lists the tree again);
  - PSS (proportional set size, /proc/<pid>/smaps_rollup) of the main process and of each worker after `--steps`
    batches and after a full pass over the index (one warm run), and the workers' growth between the two.
Several sizes (--files 50000 200000) add a line extrapolated to `--extrapolate-to` files: the index seconds and
the anonymous part of each PSS linearly in the number of files, through the two largest sizes; the rest (python
and torch start-up, worker start; file-backed library pages, shared with any other program using them) as measured
at the largest size.

    python bench/vox2_scale.py [--files 1092009] [--workers 4] [--steps 10] [--batch 128] [--repeats 3]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import torch

from bench.common import machine_line, print_table
from utils.errors import ArgumentParser, exit_on_user_error

VOX2_DEV = (5994, 1092009)  # (speakers, utterances)
UTTS_PER_VIDEO = 7.5  # VoxCeleb2 dev: 1,092,009 utterances from 145,569 videos
LINKS_PER_FILE = 60000  # below ext4's 65,000 hard links per inode


# ----- the reference: the utterance list as this project kept it before the UtteranceIndex (copied unchanged) -----

@dataclass(frozen=True)
class OldUtterance:
    """One utterance: its path, its key (last three path components) and its speaker id (first of them)."""
    path: str
    key: str
    speaker: str


def old_find_audio(root: str) -> list[str]:
    """All .wav/.flac files below `root` (recursive, symlinks followed), sorted."""
    found = []
    for folder, _, files in os.walk(root, followlinks=True):
        found.extend(os.path.join(folder, f) for f in files if f.lower().endswith(('.wav', '.flac')))
    return sorted(found)


def old_utterance_of(path: str, root: str) -> OldUtterance:
    parts = os.path.relpath(path, root).split(os.sep)
    return OldUtterance(path=path, key='/'.join(parts[-3:]), speaker=parts[-3])


def old_scan_voxceleb(root: str) -> list[OldUtterance]:
    """Every utterance below `root`, sorted by key; prints the counts."""
    utts = sorted((old_utterance_of(p, root) for p in old_find_audio(root)), key=lambda u: u.key)
    for a, b in zip(utts, utts[1:]):
        if a.key == b.key:
            raise ValueError(f"two files below {root!r} share the key {a.key!r}")
    print(f"found {len({u.speaker for u in utts}):,} speakers, {len(utts):,} utterances", flush=True)
    return utts


def old_speaker_table(utts: list[OldUtterance]) -> dict[str, int]:
    return {speaker: index for index, speaker in enumerate(sorted({u.speaker for u in utts}))}


class OldDataFreeSet:
    """The old CurriculumTrainSet's bookkeeping and lookups (labels from the list, the FT path of item i, a
    VoxCeleb KD path drawn at random), with the audio reads left out."""

    def __init__(self, ft_utts: list[OldUtterance], speakers: dict[str, int], seed: int) -> None:
        unknown = sorted({u.speaker for u in ft_utts} - speakers.keys())
        if unknown:
            raise ValueError(f"speakers missing from the speaker table: {unknown[:10]}")
        self.ft_utts = ft_utts
        self.labels = np.array([speakers[u.speaker] for u in ft_utts], dtype=np.int64)  # [U]
        self.seed, self.epoch, self.rank, self.p_vox = seed, 1, 0, 1.0

    def __len__(self) -> int:
        return len(self.ft_utts)

    def __getitem__(self, i: int) -> tuple[int, int, int]:
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, i])
        kd_path = self.ft_utts[int(rng.integers(len(self.ft_utts)))].path if rng.random() < self.p_vox else ''
        ft_path = self.ft_utts[i].path
        return os.getpid(), int(self.labels[i]), len(kd_path) + len(ft_path)


# ----- the tree -----

def build_tree(root: str, files: int, seed: int = 1) -> None:
    """`files` utterances in VoxCeleb2 dev proportions, hard links to a few generated 16 kHz .wav files."""
    from data.synth import random_channel, random_voice, synthesize
    rng = np.random.default_rng(seed)
    originals = []
    os.makedirs(os.path.join(root, 'originals'))
    for k in range(max(8, -(-files // LINKS_PER_FILE))):
        path = os.path.join(root, 'originals', f'{k}.wav')
        wav = synthesize(random_voice(rng), random_channel(rng), rng, 2.0)  # [32000]
        sf.write(path, np.round(wav * 32767).astype(np.int16), 16000, subtype='PCM_16')
        originals.append(path)
    speakers = max(2, round(files * VOX2_DEV[0] / VOX2_DEV[1]))
    first = np.arange(speakers + 1) * files // speakers  # [S+1] first utterance of each speaker
    tree = os.path.join(root, 'vox2', 'dev', 'wav')
    for s in range(speakers):
        for u in range(int(first[s + 1] - first[s])):
            video = os.path.join(tree, f'id{s + 1:05d}', f'v{s:05d}{int(u // UTTS_PER_VIDEO):05d}')
            if u == 0 or int(u // UTTS_PER_VIDEO) != int((u - 1) // UTTS_PER_VIDEO):
                os.makedirs(video)
            os.link(originals[(int(first[s]) + u) % len(originals)], os.path.join(video, f'{u + 1:05d}.wav'))


# ----- one measured process -----

def pss_kib(pid: int) -> dict[str, int]:
    """Proportional set size of process `pid` in KiB: all of it ('pss') and its anonymous part ('anon': heap,
    arrays, Python objects; the rest maps files such as libtorch, whose pages other programs share too)."""
    with open(f'/proc/{pid}/smaps_rollup', encoding='utf-8') as handle:
        fields = {line.split(':')[0]: int(line.split()[1]) for line in handle if line[:1].isupper()}
    return {'pss': fields['Pss'], 'anon': fields['Pss_Anon']}


def readings(main: int, workers: list[int], when: str) -> dict[str, int]:
    """PSS of the main process and of each worker as flat entries '<process> <pss|anon> <when>'."""
    out = {}
    for name, pid in [('main', main)] + [(f'worker{k}', p) for k, p in enumerate(workers)]:
        out.update({f'{name} {kind} {when}': value for kind, value in pss_kib(pid).items()})
    return out


def _collate(batch: list[tuple[int, int, int]]) -> tuple[list[int], int]:
    return [item[0] for item in batch], len(batch)


def child(approach: str, tree: str, cache: str, started: float, workers: int, steps: int, batch: int,
          full_pass: bool) -> dict:
    """Build the training set the `approach` way, then iterate it; times and PSS as a dict."""
    from torch.utils.data import DataLoader

    from data.curriculum import CurriculumTrainSet  # imported by both: the real program loads it either way
    from data.voxceleb import scan_voxceleb, speaker_table

    class DataFreeSet(CurriculumTrainSet):
        """The real training set with the audio reads left out (paths and labels still looked up)."""

        def _crop(self, path, label, rng, redraw):
            return np.zeros(len(path), np.float32), label

        def __getitem__(self, i):
            wav_kd, wav_ft, label, _, _ = super().__getitem__(i)
            return os.getpid(), label, len(wav_kd) + len(wav_ft)

    index_start = time.perf_counter()
    if approach == 'old':
        utts = old_scan_voxceleb(tree)
        data = OldDataFreeSet(utts, old_speaker_table(utts), seed=1)
    else:
        utts = scan_voxceleb(tree, cache_dir=cache)
        data = DataFreeSet(utts, speaker_table(utts), [], 48000, schedule='constant', total_epochs=1, seed=1,
                           p_const=1.0)
    result = {'items': len(data), 'index_s': time.perf_counter() - index_start}
    loader = DataLoader(data, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                        collate_fn=_collate, generator=torch.Generator().manual_seed(0))
    pids, seen = set(), 0
    for step, (batch_pids, size) in enumerate(loader, start=1):
        pids.update(batch_pids)
        seen += size
        if step == 1:
            result['first_batch_s'] = time.time() - started
        if step == steps:
            result.update(readings(os.getpid(), sorted(pids), '@steps'))
            if not full_pass:
                break
        if step == len(loader):  # the last batch, before the loader shuts its workers down
            result.update(readings(os.getpid(), sorted(pids), '@pass'))
    result['seen'] = seen
    return result


# ----- the parent: runs, table -----

def measure(approach: str, tree: str, cache: str, args: argparse.Namespace, full_pass: bool) -> dict:
    """One fresh process of `approach`; its result dict."""
    started = time.time()
    done = subprocess.run([sys.executable, os.path.abspath(__file__), '--child', approach, '--tree', tree,
                           '--cache', cache, '--started', repr(started), '--workers', str(args.workers), '--steps',
                           str(args.steps), '--batch', str(args.batch)] + (['--full-pass'] if full_pass else []),
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{approach} run failed (exit status {done.returncode}):\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _mib(kib: float) -> str:
    return f"{kib / 1024:,.0f}"


def row(label: str, files: int, r: dict[str, float], workers: int) -> list[str]:
    """One table line: index and first-batch seconds cold / warm, PSS after the first steps and after the pass."""
    ids = [f'worker{k}' for k in range(workers)]
    growth = max(r[f'{w} pss @pass'] / r[f'{w} pss @steps'] - 1 for w in ids)
    total = sum(r[f'{p} pss @pass'] for p in ['main'] + ids)
    return [label, f"{files:,}", f"{r['cold index']:.1f} / {r['warm index']:.1f}",
            f"{r['cold first']:.1f} / {r['warm first']:.1f}", _mib(r['main pss @steps']),
            ' / '.join(_mib(r[f'{w} pss @steps']) for w in ids), _mib(r['main pss @pass']),
            ' / '.join(_mib(r[f'{w} pss @pass']) for w in ids), f"{growth:+.0%}", _mib(total)]


def run_size(files: int, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Build a tree of `files` utterances; per approach the median times of `--repeats` cold and warm starts, and
    the PSS readings of one warm run over a full pass; delete the tree."""
    root = tempfile.mkdtemp(prefix='vox2_scale_', dir=args.tmp)
    try:
        start = time.perf_counter()
        build_tree(root, files)
        print(f"tree of {files:,} hard-linked utterances built in {time.perf_counter() - start:.0f} s", flush=True)
        time.sleep(2.5)  # folders written this recently are not cached (coarse file-time clock)
        tree, cache = os.path.join(root, 'vox2', 'dev', 'wav'), os.path.join(root, 'index_cache')
        results = {}
        for approach in ('old', 'new'):
            cold, warm = [], []
            for _ in range(args.repeats):
                shutil.rmtree(cache, ignore_errors=True)
                cold.append(measure(approach, tree, cache, args, full_pass=False))
                warm.append(measure(approach, tree, cache, args, full_pass=True) if not warm else
                            measure(approach, tree, cache, args, full_pass=False))
            assert warm[0]['seen'] == files // args.batch * args.batch and warm[0]['items'] == files
            times = {f'{kind} {what}': float(np.median([r[f'{key}_s'] for r in runs]))
                     for kind, runs in (('cold', cold), ('warm', warm))
                     for what, key in (('index', 'index'), ('first', 'first_batch'))}
            results[approach] = {**times, **{k: v for k, v in warm[0].items() if '@' in k}}
            print(f"  {approach}: {times}", flush=True)
        return results
    finally:
        shutil.rmtree(root)


def extrapolate(sizes: list[int], values: list[float], target: int) -> float:
    """Linear in the number of files, through the two largest sizes measured."""
    (n0, v0), (n1, v1) = list(zip(sizes, values))[-2:]
    return v1 + (v1 - v0) * (target - n1) / (n1 - n0)


def extrapolate_run(sizes: list[int], runs: list[dict[str, float]], target: int) -> dict[str, float]:
    """Each figure at `target` files: index seconds and anonymous PSS linearly; the rest of the first-batch
    seconds (python + torch start, workers) and of the PSS (file-backed library pages) as at the largest size."""
    def line(key: str) -> float:
        return extrapolate(sizes, [r[key] for r in runs], target)

    out = {}
    for key, value in runs[-1].items():
        if key.endswith('index') or ' anon ' in key:
            out[key] = line(key)
        elif key.endswith('first'):
            index = key.replace('first', 'index')
            out[key] = value - runs[-1][index] + line(index)
        else:
            anon = key.replace(' pss ', ' anon ')
            out[key] = value - runs[-1][anon] + line(anon)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--files', type=int, nargs='+', default=[VOX2_DEV[1]], help='utterances in the tree(s)')
    parser.add_argument('--workers', type=int, default=4, help='DataLoader workers')
    parser.add_argument('--steps', type=int, default=10, help='batches before the first PSS reading')
    parser.add_argument('--batch', type=int, default=128, help='items per batch')
    parser.add_argument('--repeats', type=int, default=3, help='cold and warm starts timed per approach and size')
    parser.add_argument('--extrapolate-to', type=int, default=VOX2_DEV[1], help='size of the extrapolated line')
    parser.add_argument('--tmp', default=None, help='folder for the temporary tree (default: the system temp)')
    parser.add_argument('--child', choices=['old', 'new'], help=argparse.SUPPRESS)
    parser.add_argument('--tree', help=argparse.SUPPRESS)
    parser.add_argument('--cache', help=argparse.SUPPRESS)
    parser.add_argument('--started', type=float, help=argparse.SUPPRESS)
    parser.add_argument('--full-pass', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < args.workers:
        parser.error(f"--steps must be at least --workers ({args.workers}): worker k delivers batches k, k + workers, "
                     f"..., and each worker is known by the batches it delivered")
    if args.child:
        print(json.dumps(child(args.child, args.tree, args.cache, args.started, args.workers, args.steps, args.batch,
                               args.full_pass)))
        return
    sizes = sorted(args.files)
    measured = {n: run_size(n, args) for n in sizes}
    rows = []
    for approach, label in (('old', 'list of Utterance objects (old)'), ('new', 'UtteranceIndex, cached (new)')):
        rows.extend(row(label, n, measured[n][approach], args.workers) for n in sizes)
        if len(sizes) > 1 and args.extrapolate_to not in sizes:
            guess = extrapolate_run(sizes, [measured[n][approach] for n in sizes], args.extrapolate_to)
            rows.append(row(f"{label}, EXTRAPOLATED", args.extrapolate_to, guess, args.workers))
    print_table(f"VoxCeleb2-layout tree, {args.workers} DataLoader workers, batch {args.batch}, data-free items; "
                f"seconds: median of {args.repeats} starts, cold / warm; PSS in MiB (workers one by one)",
                ['index', 'files', 'index built, s', 'first batch, s', f'main PSS @{args.steps}',
                 f'worker PSS @{args.steps}', 'main PSS @pass', 'worker PSS @pass', 'worker growth',
                 'total PSS @pass'], rows)
    print(f"\nafter: {machine_line(torch.device('cpu'))}")


if __name__ == '__main__':
    exit_on_user_error(main)
