"""A full disk stops a run honestly: at the first checkpoint that cannot be written, with exit status 2 and one
`error:` line (every rank together); the intact earlier checkpoint resumes to the uninterrupted run's parameters;
a best checkpoint that is not the recorded best epoch is never evaluated or exported under that epoch; a failed
export is one `error:` line too; a run directory too small for what the run writes is refused before the first epoch.

The disk fills up for real on a small tmpfs where the test may mount one (root); elsewhere ENOSPC is injected into
the checkpoint writes (tests/disk_full_main.py) or the free space is reported small."""
import errno
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors import SafetensorError

import export.store
import main
import trainer.loop
from helpers_disk import small_filesystem
from helpers_trainer import comparable_results, tiny_arguments
from trainer import checkpoint

pytestmark = pytest.mark.slow  # fills a disk under real processes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(REPO, 'tests', 'disk_full_main.py')
DISK_MB = 8  # holds a tiny run (two ~1 MB checkpoints, a temporary copy, the export, the logs and sources)


def _run_dir(path_log, name):
    return os.path.join(path_log, 'OS-KDFT2', name)



@pytest.fixture(scope='module')
def straight(root):
    """An uninterrupted two-epoch run, and a copy of its epoch-1 best checkpoint (as written then)."""
    real_save, kept = checkpoint.save_atomic, os.path.join(root, 'epoch1_best.pt')

    def save_and_keep_first_best(state, path):
        real_save(state, path)
        if path.endswith(checkpoint.BEST) and not os.path.exists(kept):
            shutil.copyfile(path, kept)

    checkpoint.save_atomic = save_and_keep_first_best
    try:
        main.main(tiny_arguments(root, name='straight'))
    finally:
        checkpoint.save_atomic = real_save
    return _run_dir(os.path.join(root, 'runs'), 'straight'), kept


def _run_filling(root, disk, mounted, fill_after, name, **settings):
    """`python tests/disk_full_main.py` on `disk`: the disk fills after `fill_after` checkpoint writes."""
    # as many torch threads as this process uses (another test may have changed it): the same sums, bit for bit
    env = {**os.environ, 'FILL_AFTER_SAVES': str(fill_after), 'OMP_NUM_THREADS': str(torch.get_num_threads())}
    env.pop('FILL_PATH', None)
    if mounted:
        env['FILL_PATH'] = os.path.join(disk, 'filler.bin')
    args = tiny_arguments(root, name=name, path_log=os.path.join(disk, 'runs'), **settings)
    return subprocess.run([sys.executable, RUNNER, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1200)


def _one_error_line(proc) -> str:
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1, proc.stderr[-3000:]
    return errors[0]


def test_a_full_disk_stops_at_the_first_failed_checkpoint_and_the_earlier_one_resumes_exactly(root, straight,
                                                                                             tmp_path):
    straight_dir, _ = straight
    disk = str(tmp_path / 'disk')
    with small_filesystem(disk, DISK_MB) as mounted:
        proc = _run_filling(root, disk, mounted, fill_after=2, name='full')  # full once epoch 1's best + last are out
        line = _one_error_line(proc)
        run = _run_dir(os.path.join(disk, 'runs'), 'full')
        failed = re.search(r'could not write the checkpoint (\S+) \((.*?)\): it needs ([\d.]+) MB, ([\d.]+ [MG]B) '
                           r'are free there\. (.*)$', line)
        assert failed, line
        path, reason, needed, free, resume = failed.groups()
        assert path in (os.path.join(run, checkpoint.BEST), os.path.join(run, checkpoint.LAST))
        assert 'No space left on device' in reason
        size = os.path.getsize(os.path.join(straight_dir, checkpoint.LAST))  # the same epoch-2 state, uninterrupted
        assert abs(float(needed) - size / 1e6) <= 0.051
        if mounted:
            assert free.endswith(' MB') and float(free[:-3]) < float(needed)
        assert resume == (f"{os.path.join(run, checkpoint.LAST)} (1 epoch(s) of phase 'joint' done) is intact: free "
                          f"space, then continue with: python main.py <same arguments> resume=True")
        # stopped at the failed checkpoint: epoch 2 neither reported nor evaluated; epoch 1's files intact
        assert 'epoch   1 |' in proc.stdout and 'epoch   2 |' not in proc.stdout and 'final Vox1' not in proc.stdout
        assert not os.path.exists(os.path.join(run, 'results.json'))
        assert not os.path.exists(os.path.join(run, 'export'))
        for name in (checkpoint.LAST, checkpoint.BEST):
            assert checkpoint.load(os.path.join(run, name))['state']['epoch'] == 1
        assert not [f for f in os.listdir(run) if f.endswith('.tmp')]  # no temporary file left behind
        if mounted:  # the log writes after the disk filled were counted and listed, not fatal
            listed = proc.stdout[proc.stdout.index('incomplete outputs'):]
            assert 'metric files: ' in listed and 'write(s) failed' in listed
            assert len(re.findall(r'OutputWarning: could not write .*metric files are counted', proc.stderr)) == 1
            os.remove(os.path.join(disk, 'filler.bin'))  # the user frees space

        main.main(tiny_arguments(root, name='full', path_log=os.path.join(disk, 'runs'), resume=True))
        a = checkpoint.load(os.path.join(straight_dir, checkpoint.LAST))
        b = checkpoint.load(os.path.join(run, checkpoint.LAST))
        assert a['model'].keys() == b['model'].keys()
        for key in a['model']:
            assert torch.equal(a['model'][key], b['model'][key]), key
        assert a['state']['history'] == b['state']['history']
        assert comparable_results(straight_dir) == comparable_results(run)


def test_a_full_disk_stops_every_rank_together(root, tmp_path):
    """Two gloo processes; rank 0 cannot write epoch 1's first checkpoint: both ranks stop, one `error:` line."""
    disk = str(tmp_path / 'disk')
    with small_filesystem(disk, DISK_MB) as mounted:
        proc = _run_filling(root, disk, mounted, fill_after=0, name='ddp', epoch=1, cpu_processes=2)
        line = _one_error_line(proc)
        run = _run_dir(os.path.join(disk, 'runs'), 'ddp')
        assert line.startswith(f'error: could not write the checkpoint {os.path.join(run, checkpoint.BEST)} (')
        assert line.endswith('No checkpoint of this run was written yet: free space, then start the run again '
                             'with a new name=')
        assert 'epoch   1 |' not in proc.stdout
        assert not os.path.exists(os.path.join(run, checkpoint.LAST))


def _copy_finished(straight_dir, name):
    """A copy of the finished straight run under `name`, without its results and export (to be redone)."""
    copy = os.path.join(os.path.dirname(straight_dir), name)
    shutil.copytree(straight_dir, copy, ignore=shutil.ignore_patterns('results.json', 'export', 'source*', 'final_*'))
    return copy


def test_a_stale_best_checkpoint_is_never_evaluated_under_the_recorded_best_epoch(root, straight, capsys):
    straight_dir, epoch1_best = straight
    best_epoch = checkpoint.load(os.path.join(straight_dir, checkpoint.LAST))['state']['best_epoch']
    run = _copy_finished(straight_dir, 'stale')
    stale = epoch1_best if best_epoch != 1 else os.path.join(straight_dir, checkpoint.LAST)  # another epoch's state
    stale_epoch = checkpoint.load(stale)['state']['epoch']
    assert stale_epoch != best_epoch
    shutil.copyfile(stale, os.path.join(run, checkpoint.BEST))
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main.main(tiny_arguments(root, name='stale', resume=True))  # a finished run: straight to the final evaluation
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and errors[0].startswith(
        f"error: {os.path.join(run, checkpoint.BEST)} holds epoch {stale_epoch} of phase 'joint'")
    assert f'but this run recorded epoch {best_epoch} (validation EER' in errors[0]
    assert not os.path.exists(os.path.join(run, 'results.json')) and not os.path.exists(os.path.join(run, 'export'))
    assert not os.path.exists(os.path.join(run, 'eer', 'final_O'))  # nothing was logged as a final result either

    shutil.copyfile(os.path.join(straight_dir, checkpoint.BEST), os.path.join(run, checkpoint.BEST))  # the right one
    main.main(tiny_arguments(root, name='stale', resume=True))
    results = comparable_results(run)
    assert results['evaluated_epoch'] == results['best_epoch'] == best_epoch
    assert results == comparable_results(straight_dir)
    with open(os.path.join(run, 'export', 'export.json')) as handle:
        assert json.load(handle)['metadata']['evaluated_epoch'] == best_epoch


def test_a_failed_export_is_one_error_line_and_leaves_no_partial_export(root, straight, monkeypatch, capsys):
    straight_dir, _ = straight
    run = _copy_finished(straight_dir, 'export_fails')

    def full_disk(tensors, path, metadata=None):  # what safetensors raises on a full disk
        open(path, 'wb').write(b'\0' * 100)
        raise SafetensorError(f'Error while serializing: I/O error: No space left on device (os error '
                              f'{errno.ENOSPC})')

    monkeypatch.setattr(export.store, 'save_file', full_disk)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main.main(tiny_arguments(root, name='export_fails', resume=True))
    assert stopped.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and errors[0].startswith(
        f"error: could not write the export {os.path.join(run, 'export')} (Error while serializing: I/O error: No "
        f"space left on device (os error 28)): it needs ")
    assert errors[0].endswith(f"{os.path.join(run, checkpoint.LAST)} (2 epoch(s) of phase 'joint' done) is intact: "
                              f"free space, then continue with: python main.py <same arguments> resume=True")
    assert os.path.isfile(os.path.join(run, 'results.json'))  # written before the export
    assert not [name for name in os.listdir(run) if 'export' in name]  # no export, no temporary export folder


def test_the_space_check_refuses_a_directory_too_small_before_the_first_epoch(root, straight, tmp_path, monkeypatch,
                                                                              capsys):
    straight_dir, _ = straight
    disk = str(tmp_path / 'small')
    steps, real_step = {'n': 0}, trainer.loop.train_step

    def counted_step(*args, **kwargs):
        steps['n'] += 1
        return real_step(*args, **kwargs)

    monkeypatch.setattr(trainer.loop, 'train_step', counted_step)
    with small_filesystem(disk, 3) as mounted:  # the logs and source copy fit, the checkpoints and export do not
        if not mounted:
            monkeypatch.setattr(checkpoint.shutil, 'disk_usage', lambda path: shutil._ntuple_diskusage(0, 0, 2_000_000))
        capsys.readouterr()
        with pytest.raises(SystemExit) as stopped:
            main.main(tiny_arguments(root, name='small', path_log=os.path.join(disk, 'runs')))
        assert stopped.value.code == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith('error:')]
        run = _run_dir(os.path.join(disk, 'runs'), 'small')
        assert len(errors) == 1 and errors[0].startswith(f'error: not enough free space for the run directory {run}')
        found = re.search(r'will hold ([\d.]+) MB more there at once \(checkpoint_best\.pt ~([\d.]+) MB, '
                          r'checkpoint_last\.pt ~([\d.]+) MB, a temporary copy while a checkpoint is replaced '
                          r'~([\d.]+) MB, the export ~([\d.]+) MB\) and ([\d.]+) MB are free', errors[0])
        assert found, errors[0]
        needed, best, last, temporary, exported, free = map(float, found.groups())
        assert needed > free and best == last == temporary
        assert best >= os.path.getsize(os.path.join(straight_dir, checkpoint.LAST)) / 1e6  # the estimate holds
        assert exported >= os.path.getsize(os.path.join(straight_dir, 'export', 'model.safetensors')) / 1e6
        assert steps['n'] == 0 and not os.path.exists(os.path.join(run, checkpoint.LAST))
