"""A noisy and reverberant copy of a test tree: every audio file below SRC, at the same relative path below OUT (so
the same trial list scores it), reverberated with a room impulse response and then mixed with noise, music or babble
at an SNR drawn from [--snr-low, --snr-high] dB (SNR against the reverberant speech, data/augment.py's definition):

    python -m data.corrupt --src ~/.cache/os_kdft2/demo_corpus_.../voxceleb1/test/wav --out /data/test_noisy --seed 7

The noise and impulse responses are generated (data/demo.py write_noise_set, the 'eval' stream of --seed: material
the demo's training augmentation never saw), or taken from --musan and --rir. Reproducible: the same arguments give
byte-identical files. OUT must not exist (nothing is ever overwritten); it is written to a hidden staging folder and
renamed into place when complete, with corruption.json recording per file what was done.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile

import numpy as np
import soundfile as sf

from data.audio import SAMPLE_RATE, read_audio
from data.augment import Augmenter, NoiseLists, scan_noise_sets
from data.demo import write_noise_set
from data.voxceleb import find_audio
from utils.atomic import atomic_directory
from utils.errors import ArgumentParser, exit_on_user_error

MANIFEST = 'corruption.json'
ADDITIVE = ('noise', 'music', 'babble')  # one of these per file, after the reverberation
PEAK = 0.99  # a file whose mix would exceed this in a PCM format is scaled down as a whole (gain in the manifest)
_STREAM = 11  # the per-file draws: np.random.default_rng([seed, _STREAM, file number])


def _relative(path: str, roots: tuple[str, ...]) -> str:
    """`path` relative to the first of `roots` that holds it (for the manifest)."""
    for root in roots:
        if os.path.commonpath([root, path]) == root:
            return os.path.relpath(path, root)
    return path


def _write(path: str, wav: np.ndarray, fmt: str, subtype: str) -> float:
    """Write `wav` at 16 kHz in the source's format and subtype; a PCM file whose peak would pass PEAK is scaled down
    as a whole (SNR unchanged). Returns the gain applied."""
    gain = 1.0
    peak = float(np.max(np.abs(wav))) if wav.size else 0.0
    if subtype.startswith('PCM') and peak > PEAK:
        gain = PEAK / peak
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, (wav * gain).astype(np.float32), SAMPLE_RATE, format=fmt, subtype=subtype)
    return gain


def corrupt_tree(src: str, out: str, seed: int, snr_db: tuple[float, float], reverb_prob: float,
                 lists: NoiseLists, noise_roots: tuple[str, ...]) -> dict:
    """Write the corrupted copy of `src` to the new folder `out` with the files of `lists`; returns the manifest."""
    sources = find_audio(src, '<src>/**/*.wav or .flac (e.g. a VoxCeleb1 test tree)')
    augmenter = Augmenter(lists, kinds=ADDITIVE, snr_db={kind: snr_db for kind in ADDITIVE})
    files = {}
    with atomic_directory(out) as staging:
        for number, path in enumerate(sources):
            rng = np.random.default_rng([seed, _STREAM, number])
            wav = read_audio(path)  # [n] a test utterance, read whole as scoring reads it
            rir = None
            if rng.random() < reverb_prob:
                wav, done = augmenter.apply('reverb', wav, rng)
                rir = _relative(done.files[0], noise_roots)
            wav, done = augmenter.augment(wav, rng)
            key = os.path.relpath(path, src)
            info = sf.info(path)
            gain = _write(os.path.join(staging, key), wav, info.format, info.subtype)
            files[key] = {'rir': rir, 'kind': done.kind, 'snr_db': done.snr_db,
                          'noise_files': [_relative(p, noise_roots) for p in done.files], 'gain': gain}
        manifest = {'src': os.path.abspath(src), 'seed': seed, 'snr_db': list(snr_db), 'reverb_prob': reverb_prob,
                    'files': files}
        with open(os.path.join(staging, MANIFEST), 'w', encoding='utf-8') as handle:
            json.dump(manifest, handle, indent=1)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog='python -m data.corrupt', description=__doc__.split('\n')[0])
    parser.add_argument('--src', required=True, help='root of the test tree (e.g. voxceleb1/test/wav)')
    parser.add_argument('--out', required=True, help='new folder for the copy (must not exist)')
    parser.add_argument('--seed', type=int, default=7, help='seed of the draws and of the generated noise')
    parser.add_argument('--snr-low', type=float, default=0.0, help='lowest SNR (dB) of the added noise')
    parser.add_argument('--snr-high', type=float, default=10.0, help='highest SNR (dB) of the added noise')
    parser.add_argument('--reverb-prob', type=float, default=1.0, help='share of files reverberated first')
    parser.add_argument('--musan', default='', help='a MUSAN root to take the noise from (default: generated)')
    parser.add_argument('--rir', default='', help='a folder of impulse responses (with --musan)')
    args = parser.parse_args(argv)
    if args.snr_low > args.snr_high:
        parser.error(f'--snr-low {args.snr_low} is above --snr-high {args.snr_high}')
    if not 0.0 <= args.reverb_prob <= 1.0:
        parser.error(f'--reverb-prob {args.reverb_prob}: expected a probability in [0, 1]')
    if bool(args.musan) != bool(args.rir):
        parser.error('--musan and --rir go together (or leave both out to generate the noise)')
    if os.path.exists(args.out):
        parser.error(f'--out {args.out} exists; nothing is overwritten: name a new folder')
    if not os.path.isdir(args.src):
        parser.error(f'--src {args.src} is not a folder')
    snr = (args.snr_low, args.snr_high)
    try:
        if args.musan:
            lists = scan_noise_sets(args.musan, args.rir)
            manifest = corrupt_tree(args.src, args.out, args.seed, snr, args.reverb_prob, lists,
                                    (os.path.abspath(args.musan), os.path.abspath(args.rir)))
        else:
            with tempfile.TemporaryDirectory() as folder:
                paths = write_noise_set(folder, args.seed, 'eval')
                lists = scan_noise_sets(paths.path_musan, paths.path_rir)
                manifest = corrupt_tree(args.src, args.out, args.seed, snr, args.reverb_prob, lists, (folder,))
    except (OSError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    kinds = [f['kind'] for f in manifest['files'].values()]
    print(f"wrote {len(kinds)} files below {args.out}: " + ', '.join(f'{k} {kinds.count(k)}' for k in ADDITIVE) +
          f"; {sum(f['rir'] is not None for f in manifest['files'].values())} reverberated; SNR {snr[0]:g}-"
          f"{snr[1]:g} dB (manifest: {os.path.join(args.out, MANIFEST)})")
    return 0


if __name__ == '__main__':
    sys.exit(exit_on_user_error(main))
