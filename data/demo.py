"""The built-in demo corpus: synthetic VoxCeleb1 dev/test trees, a VoxCeleb1-O style trial list and a
LibriSpeech-style KD tree, in the real on-disk layouts, generated once per (seed, sizes) and then reused; and apart
from it, a MUSAN / simulated-RIR layout augmentation set generated the same way."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import soundfile as sf

from data.audio import SAMPLE_RATE
from data.noise_synth import music_signal, noise_signal, room_impulse_response, speech_signal
from data.synth import random_channel, random_voice, synthesize
from data.trials import heldout_trials
from data.utterance_index import Utterance
from utils.atomic import atomic_directory

GENERATOR_VERSION = 1  # bump when the synthesis changes, so that cached corpora are not reused
MARKER = 'COMPLETE.json'
VIDEO_ID_ALPHABET = np.array(list('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'))
FIRST_TEST_ID = 10270  # VoxCeleb1 test speakers are id10270..id10309; dev ids skip that range
STREAMS = {'dev': 1, 'test': 2, 'libri': 3, 'noise-train': 5, 'noise-eval': 6}  # independent random streams
NOISE_GENERATOR_VERSION = 1  # bump when the augmentation set's synthesis changes
NOISE_PARTS = ('noise', 'music', 'speech', 'rirs')
NOISE_SET_SIZES = {'noise': 12, 'music': 8, 'speech': 16, 'rooms': 12, 'rirs_per_room': 2}  # files per part
NOISE_SECONDS = {'noise': (6.0, 10.0), 'music': (8.0, 12.0), 'speech': (4.0, 6.0)}  # file length ranges
WORDS = ('THE', 'OF', 'AND', 'HIS', 'WAS', 'SHE', 'LITTLE', 'HOUSE', 'WATER', 'BEFORE', 'NIGHT', 'LIGHT', 'OLD',
         'CAME', 'UPON', 'GREAT', 'HAND', 'THOUGHT', 'ROAD', 'MORNING')


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo corpus lives: the values for path_train, path_test, path_trials and path_libri."""
    root: str
    path_train: str
    path_test: str
    path_trials: str
    path_libri: str


def _demo_paths(root: str) -> DemoPaths:
    return DemoPaths(root=root, path_train=os.path.join(root, 'voxceleb1', 'dev', 'wav'),
                     path_test=os.path.join(root, 'voxceleb1', 'test', 'wav'),
                     path_trials=os.path.join(root, 'voxceleb1', 'veri_test2.txt'),
                     path_libri=os.path.join(root, 'librispeech', 'train-clean-100'))


def _write_pcm16(path: str, wav: np.ndarray, fmt: str) -> None:
    """Write float audio in [-1, 1] as 16 kHz mono 16-bit PCM (`fmt` 'WAV' or 'FLAC')."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pcm = np.round(wav * 32767).astype(np.int16)  # [n]
    sf.write(path, pcm, SAMPLE_RATE, format=fmt, subtype='PCM_16')


def _utterance(seed: int, stream: int, speaker: int, video: int, utt: int, clean: bool) -> np.ndarray:
    """The audio of one utterance; its content depends only on its own indices, never on corpus sizes."""
    voice = random_voice(np.random.default_rng([seed, stream, speaker, 0]))
    channel = random_channel(np.random.default_rng([seed, stream, speaker, 1, video]), clean=clean)
    rng = np.random.default_rng([seed, stream, speaker, 2, utt])
    return synthesize(voice, channel, rng, duration=float(rng.uniform(1.5, 4.0)))


def _write_voxceleb(folder: str, seed: int, part: str, ids: list[int], utts_per_speaker: int) -> list[Utterance]:
    """A VoxCeleb1-style tree <folder>/id1xxxx/<11-char video>/<00001>.wav; returns its utterances."""
    utts = []
    for s, speaker_id in enumerate(ids):
        rng = np.random.default_rng([seed, STREAMS[part], s, 3])
        num_videos = min(int(rng.integers(2, 6)), utts_per_speaker)
        videos = [''.join(rng.choice(VIDEO_ID_ALPHABET, 11)) for _ in range(num_videos)]
        video_of = np.sort(np.concatenate([np.arange(num_videos),
                                           rng.integers(num_videos, size=utts_per_speaker - num_videos)]))  # [U]
        for u, v in enumerate(video_of.tolist()):
            number = int(np.sum(video_of[:u] == v)) + 1
            key = f"id{speaker_id}/{videos[v]}/{number:05d}.wav"
            path = os.path.join(folder, *key.split('/'))
            _write_pcm16(path, _utterance(seed, STREAMS[part], s, v, u, clean=False), 'WAV')
            utts.append(Utterance(path=path, key=key, speaker=f"id{speaker_id}"))
    return utts


def _write_librispeech(folder: str, seed: int, speakers: int, utts_per_speaker: int) -> None:
    """A LibriSpeech-style tree <folder>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac with a transcript per chapter."""
    rng = np.random.default_rng([seed, STREAMS['libri'], 0, 3])
    speaker_ids = np.sort(rng.choice(np.arange(19, 9000), size=speakers, replace=False))
    for s, speaker_id in enumerate(speaker_ids.tolist()):
        chapters = np.sort(rng.choice(np.arange(1000, 200000), size=2, replace=False)).tolist()
        lines: dict[int, list[str]] = {c: [] for c in chapters}
        for u in range(utts_per_speaker):
            chapter = chapters[u % 2]
            name = f"{speaker_id}-{chapter}-{u // 2:04d}"
            path = os.path.join(folder, str(speaker_id), str(chapter), f"{name}.flac")
            _write_pcm16(path, _utterance(seed, STREAMS['libri'], s, u % 2, u, clean=True), 'FLAC')
            lines[chapter].append(f"{name} {' '.join(rng.choice(WORDS, int(rng.integers(4, 12))))}")
        for chapter, text in lines.items():
            if text:
                with open(os.path.join(folder, str(speaker_id), str(chapter), f"{speaker_id}-{chapter}.trans.txt"),
                          'w', encoding='utf-8') as handle:
                    handle.write('\n'.join(text) + '\n')


def _write_corpus(target: str, seed: int, sizes: dict[str, int]) -> None:
    """Write every part of the corpus below `target` (a fresh directory)."""
    paths = _demo_paths(target)
    test_ids = [FIRST_TEST_ID + k for k in range(sizes['test_speakers'])]
    dev_ids = [i for i in range(10001, 10001 + sizes['dev_speakers'] + len(test_ids)) if i not in test_ids]
    _write_voxceleb(paths.path_train, seed, 'dev', dev_ids[:sizes['dev_speakers']], sizes['utts_per_speaker'])
    test_utts = _write_voxceleb(paths.path_test, seed, 'test', test_ids, sizes['test_utts_per_speaker'])
    trials = heldout_trials(test_utts, sizes['num_trials'], np.random.default_rng([seed, STREAMS['test'], 4]))
    with open(paths.path_trials, 'w', encoding='utf-8') as handle:
        handle.writelines(f"{label} {e} {t}\n" for label, e, t in zip(trials.labels.tolist(), trials.enroll,
                                                                        trials.test))
    _write_librispeech(paths.path_libri, seed, sizes['libri_speakers'], sizes['libri_utts_per_speaker'])


def _generate_once(root: str, name: str, what: str, contents: str, write: Callable[[str], None], record: dict) -> str:
    """`root`/`name`, written by `write(staging folder)` unless it is complete already: generated into a hidden staging
    folder that is renamed into place with its MARKER (holding `record`), so an interrupted generation leaves nothing
    behind and a directory without the marker (someone else's) is never touched."""
    target = os.path.join(root, name)
    marker = os.path.join(target, MARKER)
    if os.path.isfile(marker):
        return target
    if os.path.exists(target):
        raise FileExistsError(f"{target} exists but has no {MARKER} (an interrupted or foreign directory); it is "
                              f"left untouched: remove it yourself or choose another path_demo")
    started = time.perf_counter()
    print(f"{what}: generating {contents} in {target}")
    try:
        with atomic_directory(target) as staging:
            write(staging)
            with open(os.path.join(staging, MARKER), 'w', encoding='utf-8') as handle:
                json.dump(record, handle, indent=1)
    except OSError:
        if not os.path.isfile(marker):  # another process finishing first is fine; anything else is not
            raise
    print(f"{what}: ready in {time.perf_counter() - started:.1f} s")
    return target


def make_demo_corpus(root: str, seed: int = 1, dev_speakers: int = 40, utts_per_speaker: int = 20,
                     test_speakers: int = 10, test_utts_per_speaker: int = 12, libri_speakers: int = 10,
                     libri_utts_per_speaker: int = 10, num_trials: int = 1000) -> DemoPaths:
    """Generate (or reuse) the synthetic corpus below `root`; same seed and sizes give byte-identical files."""
    sizes = {'dev_speakers': dev_speakers, 'utts_per_speaker': utts_per_speaker, 'test_speakers': test_speakers,
             'test_utts_per_speaker': test_utts_per_speaker, 'libri_speakers': libri_speakers,
             'libri_utts_per_speaker': libri_utts_per_speaker, 'num_trials': num_trials}
    if min(sizes.values()) < 1 or test_utts_per_speaker < 2 or test_speakers < 2:
        raise ValueError(f"demo corpus sizes must be positive, with at least 2 test speakers of 2 utterances: {sizes}")
    name = (f"demo_corpus_v{GENERATOR_VERSION}_seed{seed}_dev{dev_speakers}x{utts_per_speaker}_test{test_speakers}x"
            f"{test_utts_per_speaker}_libri{libri_speakers}x{libri_utts_per_speaker}_trials{num_trials}")
    what = (f"{dev_speakers * utts_per_speaker} dev, {test_speakers * test_utts_per_speaker} test and "
            f"{libri_speakers * libri_utts_per_speaker} LibriSpeech-style utterances")
    record = {'generator_version': GENERATOR_VERSION, 'seed': seed, **sizes}
    target = _generate_once(root, name, 'demo corpus', what, lambda staging: _write_corpus(staging, seed, sizes),
                            record)
    return _demo_paths(target)


@dataclass(frozen=True)
class NoisePaths:
    """Where a generated augmentation set lives: the values for path_musan and path_rir."""
    root: str
    path_musan: str
    path_rir: str


def _noise_paths(root: str) -> NoisePaths:
    return NoisePaths(root=root, path_musan=os.path.join(root, 'musan'),
                      path_rir=os.path.join(root, 'RIRS_NOISES', 'simulated_rirs'))


def write_noise_set(target: str, seed: int, purpose: str, sizes: dict[str, int] | None = None) -> NoisePaths:
    """A MUSAN-layout set (noise/free-sound, music/fma, speech/librivox) and simulated-RIR-layout impulse responses
    ({small,medium,large}room/RoomNNN/) below `target`, drawn from the stream of `purpose` ('train': the demo's
    augmentation, 'eval': the noise of a corrupted test copy, never trained on); byte-identical for the same
    arguments. The speech is of voices that are no corpus speaker."""
    sizes = {**NOISE_SET_SIZES, **(sizes or {})}
    paths, stream = _noise_paths(target), STREAMS[f'noise-{purpose}']
    makers = {'noise': (noise_signal, 'free-sound'), 'music': (music_signal, 'fma'),
              'speech': (speech_signal, 'librivox')}
    for part, (make, source) in makers.items():
        for k in range(sizes[part]):
            rng = np.random.default_rng([seed, stream, NOISE_PARTS.index(part), k])
            wav = make(rng, float(rng.uniform(*NOISE_SECONDS[part])))
            _write_pcm16(os.path.join(paths.path_musan, part, source, f"{part}-{source}-{k:04d}.wav"), wav, 'WAV')
    for room in range(sizes['rooms']):
        rng = np.random.default_rng([seed, stream, NOISE_PARTS.index('rirs'), room])
        rt60 = float(rng.uniform(0.15, 0.9))
        size = 'small' if rt60 < 0.35 else 'medium' if rt60 < 0.6 else 'large'
        for k in range(sizes['rirs_per_room']):
            name = f"Room{room + 1:03d}"
            path = os.path.join(paths.path_rir, f"{size}room", name, f"{name}-{k + 1:05d}.wav")
            _write_pcm16(path, 0.9 * room_impulse_response(rng, rt60), 'WAV')
    return paths


def make_demo_noise_set(root: str, seed: int = 1, purpose: str = 'train') -> NoisePaths:
    """Generate (or reuse) the demo's augmentation set below `root`, apart from the corpus (its own folder and
    marker, so the corpus stays as it is); see write_noise_set."""
    name = f"demo_noise_v{NOISE_GENERATOR_VERSION}_seed{seed}_{purpose}"
    what = (f"{NOISE_SET_SIZES['noise']} noise, {NOISE_SET_SIZES['music']} music, {NOISE_SET_SIZES['speech']} speech "
            f"files and {NOISE_SET_SIZES['rooms'] * NOISE_SET_SIZES['rirs_per_room']} impulse responses")
    record = {'generator_version': NOISE_GENERATOR_VERSION, 'seed': seed, 'purpose': purpose, **NOISE_SET_SIZES}
    target = _generate_once(root, name, 'demo augmentation set', what,
                            lambda staging: write_noise_set(staging, seed, purpose), record)
    return _noise_paths(target)
