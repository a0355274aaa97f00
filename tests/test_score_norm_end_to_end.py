"""score_norm=asnorm end to end on the tiny corpus: the final evaluation reports raw and AS-Norm figures side by side
(printed, results.json, metric files), the export carries the cohort, and `python -m export score` (PyTorch and
ONNX) prints AS-Norm figures equal to a direct computation of the formula from the export's own embeddings."""
import json
import os
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file

import main
import trainer.checkpoint
from data.trials import read_trials
from export import cli as export_cli
from export import load_exported, load_onnx, load_speaker_model
from export.cohort import COHORT_FILE
from export.model import ExportError
from helpers_trainer import tiny_arguments
from trainer.run import cohort_file_bytes
from utils.metrics import verification_metrics

TOP_N = 4  # of the tiny corpus's 6 training speakers


@pytest.fixture(scope='module')
def run(root):
    """One epoch with AS-Norm, 3 cohort utterances per speaker, an ONNX export; (run directory, printed output)."""
    import io
    import contextlib
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main.main(tiny_arguments(root, name='asnorm', epoch=1, score_norm='asnorm', cohort_size=TOP_N,
                                 cohort_utts_per_speaker=3, export_onnx=True))
    return os.path.join(root, 'runs', 'OS-KDFT2', 'asnorm'), printed.getvalue()


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def direct_asnorm(root: str, export: str, runtime: str = 'torch') -> tuple[dict, np.ndarray, list]:
    """The AS-Norm metrics of the tiny trial list, trial by trial from the formula, with embeddings of the export
    (its Python API on `runtime`) and the cohort file it carries; also the normalised scores and the trials."""
    args = dict(a.split('=', 1) for a in tiny_arguments(root))
    trials = read_trials(args['path_trials'], 'O')
    model = load_speaker_model(export, runtime=runtime, device='cpu')
    cohort = load_file(os.path.join(export, COHORT_FILE))
    entries = np.concatenate([cohort['full'], cohort['tta']], axis=1).astype(np.float64) / np.sqrt(2)  # [S, 2E]

    def vector(key: str) -> np.ndarray:  # the full_tta vector: [unit full, mean unit segment] / sqrt(2)
        emb = model.embed(os.path.join(args['path_test'], key))
        return np.concatenate([unit(emb.full.astype(np.float64)),
                               unit(emb.tta.astype(np.float64)).mean(axis=0)]) / np.sqrt(2)

    vectors = {key: vector(key) for key in dict.fromkeys(trials.enroll + trials.test)}
    normalised = []
    for e, t in zip(trials.enroll, trials.test):
        s = vectors[e] @ vectors[t]  # the full_tta score: (cos(full) + mean cos(segments)) / 2
        sides = [sorted(entries @ vectors[k], reverse=True)[:TOP_N] for k in (e, t)]
        normalised.append(0.5 * sum((s - np.mean(top)) / np.std(top) for top in sides))
    return verification_metrics(np.array(normalised), trials.labels), np.array(normalised), trials


@pytest.mark.slow  # a run with AS-Norm (the `run` fixture)
def test_final_evaluation_reports_raw_and_asnorm_side_by_side(run, root):
    run_dir, printed = run
    results = json.load(open(os.path.join(run_dir, 'results.json')))['final']['O']
    assert set(results) == {'full', 'tta', 'full_tta', 'full_asnorm', 'tta_asnorm', 'full_tta_asnorm'}
    evaluated = json.load(open(os.path.join(run_dir, 'results.json')))['evaluated_epoch']
    for kind in results:
        for metric in ('eer', 'min_dcf_0.01', 'min_dcf_0.05'):
            with open(os.path.join(run_dir, metric, 'final_O', f'{kind}.txt')) as f:
                line = f.read().strip()
            assert line.split(']')[0] == f'[{evaluated}'
            assert float(line.rsplit(':', 1)[1]) == pytest.approx(results[kind][metric], abs=1e-9)
    raw, norm = results['full_tta'], results['full_tta_asnorm']
    assert f"full+TTA): EER {raw['eer']:.2f} % | minDCF(0.01) {raw['min_dcf_0.01']:.4f}" in printed
    assert f"full+TTA) AS-Norm: EER {norm['eer']:.2f} % | minDCF(0.01) {norm['min_dcf_0.01']:.4f}" in printed
    expected, _, _ = direct_asnorm(root, os.path.join(run_dir, 'export'))
    for metric in ('eer', 'min_dcf_0.01', 'min_dcf_0.05'):
        assert norm[metric] == pytest.approx(expected[metric], abs=1e-3)


@pytest.mark.slow  # a run with AS-Norm (the `run` fixture)
def test_the_export_carries_the_cohort_of_every_training_speaker(run):
    run_dir, _ = run
    export = os.path.join(run_dir, 'export')
    with open(os.path.join(export, 'export.json')) as f:
        described = json.load(f)['score_norm']
    final = json.load(open(os.path.join(run_dir, 'results.json')))['final']['O']['full_tta_asnorm']
    assert described == {'method': 'asnorm', 'file': COHORT_FILE, 'top_n': TOP_N, 'speakers': 6,
                         'threshold': pytest.approx(final['threshold']), 'score_kind': 'full_tta_asnorm'}
    model = load_exported(export)
    cohort = load_file(os.path.join(export, COHORT_FILE))
    assert np.array_equal(model.score_norm.cohort.full, cohort['full']) and cohort['full'].shape == (6, 16)
    np.testing.assert_allclose(np.linalg.norm(cohort['tta'], axis=1), 1.0, atol=1e-6)
    onnx = load_onnx(export)  # the ONNX description names the same file
    assert np.array_equal(onnx.score_norm.cohort.tta, cohort['tta'])
    assert onnx.score_norm.threshold == model.score_norm.threshold
    size = os.path.getsize(os.path.join(export, COHORT_FILE))  # the start-up space check's estimate bounds it
    assert size <= cohort_file_bytes(6, 16) <= size + 4096, (size, cohort_file_bytes(6, 16))


def test_the_space_check_counts_the_cohort(root, monkeypatch, capsys):
    monkeypatch.setattr(trainer.checkpoint.shutil, 'disk_usage', lambda path: shutil._ntuple_diskusage(0, 0, 0))  # nothing free
    with pytest.raises(SystemExit) as stopped:
        main.main(tiny_arguments(root, name='asnorm_no_space', epoch=1, score_norm='asnorm', cohort_size=TOP_N))
    assert stopped.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith('error: not enough free')]
    assert len(errors) == 1 and ', the export ~' in errors[0] and ', its AS-Norm cohort ~0.0 MB)' in errors[0]


@pytest.mark.slow  # a run with AS-Norm (the `run` fixture)
@pytest.mark.parametrize('runtime', ['torch', 'onnx'])
def test_export_score_prints_asnorm_figures_equal_to_the_formula(run, root, tmp_path, capsys, runtime):
    run_dir, _ = run
    export = os.path.join(run_dir, 'export')
    expected, normalised, trials = direct_asnorm(root, export, runtime)
    args = dict(a.split('=', 1) for a in tiny_arguments(root))
    capsys.readouterr()
    export_cli.main(['score', '--model', export, '--runtime', runtime, '--trials', args['path_trials'],
                     '--audio-root', args['path_test'], '--out', str(tmp_path / 'scores.txt'), '--device', 'cpu'])
    printed = capsys.readouterr().out
    asnorm = printed.split('AS-Norm: EER ')[1]
    assert float(asnorm.split(' %')[0]) == pytest.approx(expected['eer'], abs=1e-3)
    assert float(asnorm.split('minDCF(0.01) ')[1].split(' ')[0]) == pytest.approx(expected['min_dcf_0.01'], abs=2e-4)
    rows = [line.split() for line in open(tmp_path / 'scores.asnorm.txt')]
    assert [(e, t) for _, e, t in rows] == list(zip(trials.enroll, trials.test))
    np.testing.assert_allclose([float(s) for s, _, _ in rows], normalised, rtol=0, atol=2e-6)  # 6 decimals written
    raw = [line.split() for line in open(tmp_path / 'scores.txt')]
    assert len(raw) == len(rows) and all(len(r) == 3 for r in raw)  # the raw scores file keeps its format


@pytest.mark.slow  # a run with AS-Norm (the `run` fixture)
def test_a_broken_cohort_is_one_error_naming_the_file(run, tmp_path):
    import shutil
    broken = str(tmp_path / 'export')
    shutil.copytree(os.path.join(run[0], 'export'), broken)
    os.remove(os.path.join(broken, COHORT_FILE))
    with pytest.raises(ExportError, match=f'names the AS-Norm cohort .*{COHORT_FILE}, which does not exist'):
        load_exported(broken)


@pytest.mark.slow  # a run with AS-Norm (the `run` fixture)
def test_an_onnx_file_outside_its_export_gets_the_cohort_beside_it(run, tmp_path):
    """write_onnx of a model not read from an export directory writes the cohort next to the ONNX file; the
    description's section reads back to the same cohort and threshold."""
    from export.cohort import read_cohort
    from export.onnx_export import cohort_section
    model = load_exported(os.path.join(run[0], 'export'))
    described, written = cohort_section(model, str(tmp_path / 'speaker.onnx'), None)
    assert written == str(tmp_path / 'speaker.onnx.cohort.safetensors') and os.path.isfile(written)
    assert described['file'] == 'speaker.onnx.cohort.safetensors'
    read = read_cohort({'score_norm': described}, str(tmp_path), model.embed_size, 'test')
    assert np.array_equal(read.cohort.full, model.score_norm.cohort.full)
    assert np.array_equal(read.cohort.tta, model.score_norm.cohort.tta)
    assert (read.cohort.top_n, read.threshold) == (model.score_norm.cohort.top_n, model.score_norm.threshold)
    same_folder, none_written = cohort_section(model, os.path.join(run[0], 'export', 'again.onnx'),
                                               os.path.join(run[0], 'export'))
    assert same_folder['file'] == COHORT_FILE and none_written is None
