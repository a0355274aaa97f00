"""`python -m export`: embed, score, verify and export reproduce the in-training model's numbers; bad input gets
one line naming it."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from export import describe_model, export_model
from export.cli import main
from helpers_export import (NUM_SEG, SEG_SIZE, cli_error, reference_embeddings, reference_score, training_core,
                            write_corpus, write_trial_list)
from trainer.checkpoint import save_atomic
from utils.metrics import compute_eer, compute_min_dcf

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """A trained-looking os_kdft2 model, its export, a 4-speaker corpus, a trial list and reference scores."""
    base = tmp_path_factory.mktemp('export_cli')
    core = training_core('os_kdft2', seed=5)
    files = write_corpus(str(base / 'wav'))
    pairs, labels = write_trial_list(str(base / 'veri_test2.txt'), list(files))
    reference = {key: reference_embeddings(core, path) for key, path in files.items()}
    scores = np.array([reference_score(reference[a], reference[b]) for a, b in pairs])  # [N]
    eer, threshold = compute_eer(scores, labels)
    model_dir = export_model(core, str(base / 'model'), threshold, {'note': 'test'}, SEG_SIZE, NUM_SEG)
    ckpt = str(base / 'checkpoint_best.pt')
    save_atomic({'model': core.state_dict(), 'export': describe_model(core, SEG_SIZE, NUM_SEG)}, ckpt)
    return dict(base=base, files=files, pairs=pairs, labels=labels, reference=reference, scores=scores, eer=eer,
                threshold=threshold, model=model_dir, ckpt=ckpt)


def test_score_reproduces_the_training_models_eer(setup, capsys):
    out = str(setup['base'] / 'scores.txt')
    main(['score', '--model', setup['model'], '--trials', str(setup['base'] / 'veri_test2.txt'),
          '--audio-root', str(setup['base'] / 'wav'), '--out', out, '--device', 'cpu'])
    lines = [line.split() for line in open(out)]
    assert [(e, t) for _, e, t in lines] == setup['pairs']
    written = np.array([float(s) for s, _, _ in lines])
    assert np.abs(written - setup['scores']).max() < 2e-5
    printed = capsys.readouterr().out
    eer = float(re.search(r'EER ([0-9.]+) %', printed).group(1))
    assert 0.0 < setup['eer'] < 50.0  # a non-trivial list: some trials on each side of the threshold
    assert eer == pytest.approx(setup['eer'], abs=1e-4)
    dcf = float(re.search(r'minDCF\(0.05\) ([0-9.]+)', printed).group(1))
    assert dcf == pytest.approx(compute_min_dcf(setup['scores'], setup['labels'], 0.05), abs=1e-4)


def test_score_accepts_the_voxceleb_test_root_above_wav(setup, capsys):
    """--audio-root at the level above wav/ (VoxCeleb1's test folder as unpacked, which training accepts too) scores
    the list to the same scores, and says which folder it read."""
    out = str(setup['base'] / 'scores_above_wav.txt')
    main(['score', '--model', setup['model'], '--trials', str(setup['base'] / 'veri_test2.txt'),
          '--audio-root', str(setup['base']), '--out', out, '--device', 'cpu'])
    written = np.array([float(line.split()[0]) for line in open(out)])
    assert np.abs(written - setup['scores']).max() < 2e-5
    assert f"audio root: {setup['base'] / 'wav'}\n" in capsys.readouterr().out


def test_score_without_labels_writes_scores_only_searching_every_root(setup, capsys):
    unlabelled = setup['base'] / 'pairs.txt'
    unlabelled.write_text(''.join(f'{a} {b}\n' for a, b in setup['pairs'][:5]))
    out = str(setup['base'] / 'scores_unlabelled.txt')
    empty_root = setup['base'] / 'empty_root'
    empty_root.mkdir()
    main(['score', '--model', setup['model'], '--trials', str(unlabelled), '--audio-root', str(empty_root),
          str(setup['base'] / 'wav'), '--out', out])
    written = np.array([float(line.split()[0]) for line in open(out)])
    assert np.abs(written - setup['scores'][:5]).max() < 2e-5
    assert 'EER' not in capsys.readouterr().out


def test_embed_writes_full_and_tta_embeddings(setup):
    paths = list(setup['files'].values())[:3]
    listing = setup['base'] / 'list.txt'
    listing.write_text('\n'.join(paths[1:]) + '\n')
    out = str(setup['base'] / 'emb.npz')
    main(['embed', '--model', setup['model'], '--out', out, '--list', str(listing), paths[0]])
    saved = np.load(out)
    assert saved['keys'].tolist() == paths
    assert saved['full'].shape == (3, 16) and saved['tta'].shape == (3, NUM_SEG, 16)
    assert (int(saved['seg_size']), int(saved['num_seg'])) == (SEG_SIZE, NUM_SEG)
    for row, key in enumerate(list(setup['files'])[:3]):
        full, tta = setup['reference'][key]
        assert np.abs(saved['full'][row] - full.numpy()).max() < 1e-5
        assert np.abs(saved['tta'][row] - tta.numpy()).max() < 1e-5


def test_verify_prints_the_score_and_the_decision_at_the_stored_threshold(setup, capsys):
    above = np.flatnonzero(setup['scores'] >= setup['threshold'])[:2]
    below = np.flatnonzero(setup['scores'] < setup['threshold'])[:2]
    assert len(above) == len(below) == 2  # both decisions are exercised
    for trial, decision in [(i, 'same speaker') for i in above] + [(i, 'different speakers') for i in below]:
        a, b = setup['pairs'][trial]
        main(['verify', '--model', setup['model'], setup['files'][a], setup['files'][b]])
        printed = capsys.readouterr().out
        score = float(re.search(r'score (-?[0-9.]+)', printed).group(1))
        assert score == pytest.approx(setup['scores'][trial], abs=2e-5)
        assert decision in printed


def test_export_command_sets_the_threshold_at_the_lists_eer(setup):
    out = str(setup['base'] / 'calibrated')
    main(['export', '--checkpoint', setup['ckpt'], '--out', out, '--trials', str(setup['base'] / 'veri_test2.txt'),
          '--audio-root', str(setup['base'] / 'wav')])
    document = json.load(open(os.path.join(out, 'export.json')))
    assert document['decision']['threshold'] == pytest.approx(setup['threshold'], abs=2e-5)
    assert document['metadata']['calibration']['eer'] == pytest.approx(setup['eer'], abs=1e-6)
    given = str(setup['base'] / 'given')
    main(['export', '--checkpoint', setup['ckpt'], '--out', given, '--threshold', '0.375'])
    assert json.load(open(os.path.join(given, 'export.json')))['decision']['threshold'] == 0.375


def test_user_errors_are_one_line_naming_the_path(setup):
    wav = setup['files'][setup['pairs'][0][0]]
    missing = str(setup['base'] / 'nowhere.wav')
    assert missing in cli_error(['verify', '--model', setup['model'], wav, missing])
    mp3 = setup['base'] / 'voice.mp3'
    mp3.write_bytes(b'ID3')
    message = cli_error(['embed', '--model', setup['model'], '--out', str(setup['base'] / 'x.npz'), str(mp3)])
    assert str(mp3) in message and 'unsupported audio format' in message
    not_export = str(setup['base'] / 'wav')
    message = cli_error(['verify', '--model', not_export, wav, wav])
    assert not_export in message and 'export.json' in message
    message = cli_error(['export', '--checkpoint', setup['ckpt'], '--out', setup['model'], '--threshold', '0'])
    assert setup['model'] in message and 'already exists' in message
    bad_trials = setup['base'] / 'bad_trials.txt'
    bad_trials.write_text('1 id10000/video0/00001.wav id19999/video0/00001.wav\n')
    message = cli_error(['score', '--model', setup['model'], '--trials', str(bad_trials), '--audio-root',
                         str(setup['base'] / 'wav'), '--out', str(setup['base'] / 's.txt')])
    assert 'trial key id19999/video0/00001.wav not found' in message and str(setup['base'] / 'wav') in message


@pytest.mark.slow  # a real python -m export process
def test_module_entry_point_reports_without_traceback(tmp_path):
    wav = tmp_path / 'a.wav'
    wav.write_bytes(b'')
    result = subprocess.run([sys.executable, '-m', 'export', 'verify', '--model', str(tmp_path), str(wav), str(wav)],
                            cwd=ROOT_DIR, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2  # a user error, as main.py exits
    assert 'Traceback' not in result.stderr
    assert result.stderr.strip() == f'error: {tmp_path} is not an export: no export.json; expected an export ' \
                                    f'directory holding export.json and model.safetensors (written by ' \
                                    f'export_model or `python -m export export`)'
