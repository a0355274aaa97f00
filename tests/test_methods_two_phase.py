"""precomp and postcomp end to end on the tiny configuration: both phases run, each phase trains exactly the parts
it should (checked on the weights after every epoch), the losses fall, the files exist, and the final model is
evaluated and exported."""
import json
import os

import pytest

import main
from export import load_exported
from helpers_phases import PartsRecorder, changed_share, same
from helpers_trainer import tiny_arguments
from trainer import checkpoint

SETTINGS = {'precomp': dict(epoch_KD=2, epoch=2, freeze_epochs=1),
            'postcomp': dict(epoch=2, epoch_KD=2, freeze_epochs=1)}
pytestmark = pytest.mark.slow  # two two-phase runs (precomp, postcomp) end to end
TRAINED = 0.9  # share of a trained part's parameters that must have moved (a few get no gradient in some steps)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Run each baseline once, recording the parts after every epoch."""
    root, out = str(tmp_path_factory.mktemp('two_phase')), {}
    for method, settings in SETTINGS.items():
        with pytest.MonkeyPatch.context() as monkeypatch:
            recorder = PartsRecorder(monkeypatch)
            main.main(tiny_arguments(root, method=method, name=method, **settings))
        out[method] = (recorder, os.path.join(root, 'runs', 'OS-KDFT2', method))
    return out


def _parameters(recorder):
    return {name for name, _ in recorder.parts.named_parameters()}


def test_precomp_trains_the_student_by_kd_then_the_back_end_then_both(runs):
    recorder, run = runs['precomp']
    params = _parameters(recorder)
    init, kd = recorder.at('init', 0), recorder.at('kd', 2)
    # phase 1 (KD): student and KD heads learn; back-end and classifier are not part of it
    assert changed_share(init, kd, 'student.', params) > TRAINED
    assert changed_share(init, kd, 'kd_loss.', params) == 1.0
    assert same(init, kd, 'backend.') and same(init, kd, 'ft_loss.')
    # phase 2, frozen epoch: back-end and classifier learn, the student stays the distilled one
    ft1 = recorder.at('ft', 1)
    assert same(kd, ft1, 'student.') and same(kd, ft1, 'kd_loss.')
    assert changed_share(kd, ft1, 'backend.', params) > TRAINED
    assert changed_share(kd, ft1, 'ft_loss.', params) == 1.0
    # phase 2 after the freeze: the student learns too; the KD heads are done
    ft2 = recorder.at('ft', 2)
    assert changed_share(ft1, ft2, 'student.', params) > TRAINED
    assert same(ft1, ft2, 'kd_loss.')
    # phase 2 started from phase 1's last state, which its own file holds
    kd_last = checkpoint.load(os.path.join(run, 'checkpoint_kd_last.pt'))
    assert kd_last['phase'] == 'kd' and 'export' not in kd_last
    assert all(kd_last['model'][k].equal(kd[k]) for k in kd_last['model'])


def test_postcomp_fine_tunes_the_teacher_copy_then_distils_it(runs):
    recorder, run = runs['postcomp']
    params = _parameters(recorder)
    init, t1, t2 = (recorder.at(p, e) for p, e in (('init', 0), ('teacher_ft', 1), ('teacher_ft', 2)))
    # phase 1: teacher copy frozen in epoch 1, trained afterwards; its back-end and the classifier always train
    assert same(init, t1, 'teacher_ft.')
    assert changed_share(t1, t2, 'teacher_ft.', params) > TRAINED
    for before, after in ((init, t1), (t1, t2)):
        assert changed_share(before, after, 'teacher_backend.', params) > TRAINED
        assert changed_share(before, after, 'ft_loss.', params) == 1.0
    for part in ('student.', 'backend.', 'kd_loss.'):  # the student side waits for phase 2
        assert same(init, t2, part)
    # phase 2 starts from phase 1's best epoch and never changes it; the student side learns
    best = checkpoint.load(os.path.join(run, 'checkpoint_teacher_ft_best.pt'))
    assert best['phase'] == 'teacher_ft' and best['export']['num_layers'] == 3  # the full-depth copy, exportable
    k1, k2 = recorder.at('kd', 1), recorder.at('kd', 2)
    parts_of_phase1 = {'student.': 'teacher_ft.', 'backend.': 'teacher_backend.', 'ft_loss.': 'ft_loss.'}
    for key, value in best['model'].items():
        prefix = key.split('.')[0] + '.'
        target = parts_of_phase1[prefix] + key[len(prefix):]
        assert value.equal(k1[target]) and value.equal(k2[target]), key
    assert same(k1, k2, 'ft_loss.')  # the classifier is not part of phase 2
    for before, after in ((t2, k1), (k1, k2)):
        for part in ('student.', 'backend.', 'kd_loss.'):
            assert changed_share(before, after, part, params) > TRAINED


@pytest.mark.parametrize('method, first, second, kd_file, kd_losses, trained_parts', [
    ('precomp', 'kd', 'ft', 'checkpoint_kd_last.pt', ('loss/kd',), ('student', 'kd_loss', 'backend', 'ft_loss')),
    ('postcomp', 'teacher_ft', 'kd', 'checkpoint_last.pt', ('loss/kd', 'loss/mse'),
     ('teacher_ft', 'teacher_backend', 'ft_loss', 'student', 'backend', 'kd_loss'))])
def test_losses_fall_and_files_exist(runs, method, first, second, kd_file, kd_losses, trained_parts):
    """The distillation losses fall epoch over epoch (the speaker loss needs more steps than a tiny run has: see
    test_methods_phase_modules.py); every file of a two-phase run is there; the parameter counts add up."""
    recorder, run = runs[method]
    for name in ('checkpoint_last.pt', 'checkpoint_best.pt', f'checkpoint_{first}_last.pt', 'phases.json',
                 'results.json', os.path.join('export', 'export.json')):
        assert os.path.isfile(os.path.join(run, name)), name
    last = checkpoint.load(os.path.join(run, checkpoint.LAST))
    assert last['phase'] == second and last['state']['epoch'] == 2
    history = checkpoint.load(os.path.join(run, kd_file))['state']['history']
    for name in kd_losses:
        assert history[-1][name] < history[0][name], name
    results = json.load(open(os.path.join(run, 'results.json')))
    assert results['method'] == method and list(results['phases']) == [first, second]
    assert results['best_epoch'] == last['state']['best_epoch']
    numel = {name: sum(p.numel() for p in getattr(recorder.parts, name).parameters()) for name in trained_parts}
    assert results['params'] == {'model': numel['student'] + numel['backend'], 'trained': sum(numel.values())}
    exported = load_exported(os.path.join(run, 'export'))
    assert sum(p.numel() for p in exported.parameters()) == results['params']['model']
    if method == 'postcomp':  # the fine-tuned teacher's own full + TTA result, before it was compressed
        teacher = results['phases']['teacher_ft']['final']['O']['full_tta']
        with open(os.path.join(run, 'teacher_ft', 'eer', 'final_O', 'full_tta.txt')) as f:
            assert float(f.read().rsplit(':', 1)[1]) == pytest.approx(teacher['eer'], abs=1e-9)
        assert json.load(open(os.path.join(run, 'phases.json')))['teacher_ft']['final']['O']['full_tta'] == teacher
    with open(os.path.join(run, 'eer', 'final_O', 'full_tta.txt')) as f:  # what was logged is what is reported
        assert float(f.read().rsplit(':', 1)[1]) == pytest.approx(results['final']['O']['full_tta']['eer'], abs=1e-9)
    # the final model is the last phase's best epoch: checkpoint_best.pt, evaluated and exported
    best = checkpoint.load(os.path.join(run, checkpoint.BEST))
    assert best['phase'] == second and best['state']['epoch'] == results['best_epoch']
    assert os.path.isfile(os.path.join(run, first, 'loss.txt'))  # the earlier phase logs under its own name
