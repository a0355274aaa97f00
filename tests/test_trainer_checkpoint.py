"""Checkpoints are atomic, a write that keeps failing stops the run naming what to resume, the start-up space
estimate holds, and run directories are never overwritten."""
import errno
import io
import os
import re
import shutil
import socket

import pytest
import torch

from helpers_disk import failing_write
from trainer import checkpoint
from utils import run_lock
from utils.run_lock import LOCK_FILE
from utils.errors import UserError
from utils.seed import get_rng_state


def test_atomic_save_roundtrip_and_failed_write_keeps_previous(tmp_path, monkeypatch):
    path = str(tmp_path / 'ckpt.pt')
    checkpoint.save_atomic({'w': torch.arange(5.0)}, path)
    before = open(path, 'rb').read()
    torch.testing.assert_close(checkpoint.load(path)['w'], torch.arange(5.0))

    real_save, tries = torch.save, {'n': 0}

    def fail_part_way(obj, f, *a, **k):  # write some bytes, then fail like a full disk
        if not isinstance(f, checkpoint._ByteCounter):
            tries['n'] += 1
            f.write(b'partial bytes')
            raise OSError(28, 'No space left on device')
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, 'save', fail_part_way)
    monkeypatch.setattr(checkpoint, 'RETRY_SECONDS', 0.0)
    new = {'w': torch.zeros(1000)}
    with pytest.raises(checkpoint.CheckpointWriteError) as stopped:
        checkpoint.save_atomic(new, path)
    monkeypatch.setattr(torch, 'save', real_save)
    assert tries['n'] == checkpoint.WRITE_ATTEMPTS  # a short retry, then the run stops
    message = str(stopped.value)
    assert f'could not write the checkpoint {path} ([Errno 28] No space left on device)' in message
    buffer = io.BytesIO()
    torch.save(new, buffer)
    assert f'it needs {len(buffer.getvalue()) / 1e6:.1f} MB' in message  # the size torch.save writes
    assert message.endswith('are free there. No checkpoint of this run was written yet: free space, then start the run '
                            'again with a new name=')  # the folder holds no checkpoint_last.pt
    assert open(path, 'rb').read() == before  # byte-identical previous checkpoint
    assert os.listdir(tmp_path) == ['ckpt.pt']  # no temporary file left behind


def test_an_error_that_is_not_a_failed_write_is_raised_as_it_is(tmp_path, monkeypatch):
    tries = {'n': 0}

    def bug(obj, f, *a, **k):
        tries['n'] += 1
        raise RuntimeError('a bug, not a full disk')

    monkeypatch.setattr(torch, 'save', bug)
    with pytest.raises(RuntimeError, match='a bug, not a full disk'):
        checkpoint.save_atomic({'w': torch.zeros(3)}, str(tmp_path / 'ckpt.pt'))
    assert tries['n'] == 1 and os.listdir(tmp_path) == []


def test_a_failed_write_names_the_intact_resume_point(tmp_path, monkeypatch):
    state = checkpoint.TrainState(epoch=3, step=2)
    checkpoint.save_atomic({'state': state.__dict__, 'phase': 'joint'}, str(tmp_path / checkpoint.LAST))
    monkeypatch.setattr(checkpoint, 'RETRY_SECONDS', 0.0)
    monkeypatch.setattr(checkpoint, 'atomic_write', lambda path, write: failing_write(io.BytesIO(), b'x' * 10))
    with pytest.raises(checkpoint.CheckpointWriteError, match=re.escape(
            f"{tmp_path / checkpoint.LAST} (3 epoch(s) of phase 'joint' done, 2 step(s) into the next) is intact: "
            f"free space, then continue with: python main.py <same arguments> resume=True")):
        checkpoint.save_atomic({'w': torch.ones(3)}, str(tmp_path / checkpoint.BEST))


def test_checkpoint_estimate_bounds_the_file_written(tmp_path):
    """The start-up space check's estimate holds a real Adam checkpoint: at least every tensor it carries (weights,
    buffers, two moments per parameter), at most the estimate."""
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(40, 30), torch.nn.BatchNorm1d(30), torch.nn.Linear(30, 5))
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=2)
    module(torch.randn(8, 40)).square().mean().backward()
    optimizer.step()
    path = str(tmp_path / checkpoint.LAST)
    state = checkpoint.TrainState(epoch=1, history=[{'epoch': 1, 'loss': 0.5}])
    checkpoint.save_atomic(checkpoint.training_state(module, optimizer, scheduler, state, 'joint',
                                                     [get_rng_state()]), path)
    size = os.path.getsize(path)
    parameters = list(module.parameters())
    data = checkpoint.tensor_bytes(module.state_dict().values()) + 2 * checkpoint.tensor_bytes(parameters)
    assert data < size <= checkpoint.checkpoint_estimate(module)


def test_the_space_check_counts_what_is_not_on_disk_yet(tmp_path, monkeypatch):
    run = str(tmp_path)
    planned = {checkpoint.LAST: 4_000_000, checkpoint.BEST: 4_000_000}
    free = {'bytes': 13_000_000}
    monkeypatch.setattr(checkpoint.shutil, 'disk_usage', lambda path: shutil._ntuple_diskusage(0, 0, free['bytes']))
    checkpoint.check_free_space(run, planned, {'the export': 1_000_000})  # 2 + temporary + export = 13 MB
    free['bytes'] = 12_999_999
    with pytest.raises(checkpoint.CheckpointWriteError, match=re.escape(
            f'not enough free space for the run directory {run}: the run will hold 13.0 MB more there at once '
            f'(checkpoint_last.pt ~4.0 MB, checkpoint_best.pt ~4.0 MB, a temporary copy while a checkpoint is '
            f'replaced ~4.0 MB, the export ~1.0 MB) and 13.0 MB are free')):
        checkpoint.check_free_space(run, planned, {'the export': 1_000_000})
    open(os.path.join(run, checkpoint.LAST), 'wb').close()  # a resumed run: that file's space is taken already
    checkpoint.check_free_space(run, planned, {'the export': 1_000_000})


def test_a_run_is_never_overwritten(tmp_path):
    first = checkpoint.prepare_run_dir(str(tmp_path), 'proj', 'exp', resume=False)
    assert (first.resume, first.note) == (False, '') and os.path.isdir(first.path)
    checkpoint.save_atomic({'w': 1}, os.path.join(first.path, checkpoint.LAST))
    first.lock.release()
    (tmp_path / 'proj' / 'exp' / 'mine.txt').write_text('keep me')
    with pytest.raises(UserError, match='already exists .*resume=True'):
        checkpoint.prepare_run_dir(str(tmp_path), 'proj', 'exp', resume=False)
    assert sorted(os.listdir(first.path)) == [checkpoint.LAST, 'mine.txt', LOCK_FILE]
    again = checkpoint.prepare_run_dir(str(tmp_path), 'proj', 'exp', resume=True)
    assert (again.path, again.resume) == (first.path, True)
    again.lock.release()
    assert (tmp_path / 'proj' / 'exp' / 'mine.txt').read_text() == 'keep me'
    with pytest.raises(UserError, match='no run .*other.* to resume'):
        checkpoint.prepare_run_dir(str(tmp_path), 'proj', 'other', resume=True)
    assert not os.path.exists(tmp_path / 'proj' / 'other')


@pytest.mark.parametrize('resume', [False, True])
def test_a_held_directory_is_refused_naming_its_host_and_pid(tmp_path, resume):
    """While a run holds its directory's lock (here this process, through its own open of the lock file), a start
    and a resume are both refused naming the holder, and nothing in the directory moves: neither the failed-start
    rule (no checkpoint yet) nor a resume (a checkpoint) touches it. Once released, the directory is usable."""
    live = checkpoint.prepare_run_dir(str(tmp_path), 'proj', 'exp', resume=False)
    (tmp_path / 'proj' / 'exp' / 'arguments.json').write_text('{}')
    if resume:
        checkpoint.save_atomic({'w': 1}, os.path.join(live.path, checkpoint.LAST))
    before = sorted(os.listdir(live.path))
    with pytest.raises(UserError, match=re.escape(
            f'run {live.path} is in use by a live run (host {socket.gethostname()}, PID {os.getpid()})')):
        checkpoint.prepare_run_dir(str(tmp_path), 'proj', 'exp', resume=resume)
    assert sorted(os.listdir(live.path)) == before
    live.lock.release()
    after = checkpoint.prepare_run_dir(str(tmp_path), 'proj', 'exp', resume=resume)
    assert after.resume is resume and (checkpoint.ATTEMPTS in os.listdir(after.path)) is not resume
    after.lock.release()


@pytest.mark.parametrize('resume', [False, True])
def test_a_directory_without_checkpoint_is_set_aside_not_deleted(tmp_path, resume):
    """What a start that stopped before its first save left is moved into attempts/<timestamp>/, byte for byte; a
    second such start gets its own folder; the run starts from epoch 1 (resume=True too, with a note)."""
    run = tmp_path / 'proj' / 'exp'
    (run / 'source').mkdir(parents=True)
    (run / 'parameters.txt').write_text('epoch: 2\n')
    (run / 'source' / 'main.py').write_text('print(1)\n')
    prepared = checkpoint.prepare_run_dir(str(tmp_path), 'proj', 'exp', resume=resume)
    prepared.lock.release()
    assert prepared.path == str(run) and prepared.resume is False
    assert sorted(os.listdir(run)) == [checkpoint.ATTEMPTS, LOCK_FILE]
    [stamp] = os.listdir(run / checkpoint.ATTEMPTS)
    kept = run / checkpoint.ATTEMPTS / stamp
    assert (kept / 'parameters.txt').read_text() == 'epoch: 2\n'
    assert (kept / 'source' / 'main.py').read_text() == 'print(1)\n'
    assert str(kept) in prepared.note and ('resume=True' in prepared.note) == resume
    (run / 'parameters.txt').write_text('second try\n')  # the second start fails too
    checkpoint.prepare_run_dir(str(tmp_path), 'proj', 'exp', resume=resume).lock.release()
    folders = sorted(os.listdir(run / checkpoint.ATTEMPTS))
    assert len(folders) == 2 and folders[0] == stamp
    assert (run / checkpoint.ATTEMPTS / folders[1] / 'parameters.txt').read_text() == 'second try\n'
    assert sorted(os.listdir(run)) == [checkpoint.ATTEMPTS, LOCK_FILE]


def test_an_empty_directory_is_used_as_it_is(tmp_path):
    (tmp_path / 'proj' / 'exp').mkdir(parents=True)
    prepared = checkpoint.prepare_run_dir(str(tmp_path), 'proj', 'exp', resume=False)
    prepared.lock.release()
    assert prepared.resume is False and 'starts in it at epoch 1' in prepared.note
    assert os.listdir(prepared.path) == [LOCK_FILE]


def test_unreadable_checkpoint_is_named(tmp_path):
    bad = tmp_path / 'bad.pt'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(RuntimeError, match='bad.pt'):
        checkpoint.load(str(bad))


def test_a_file_system_without_locks_is_said_and_the_run_proceeds(tmp_path, monkeypatch, capsys):
    """flock answering ENOLCK (as some FUSE / parallel file systems do): one note naming the directory, and the run
    directory is prepared without a lock."""
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
    monkeypatch.setattr(run_lock.fcntl, 'flock', no_locks)
    prepared = checkpoint.prepare_run_dir(str(tmp_path), 'proj', 'exp', resume=False)
    assert prepared.lock.fd is None and prepared.resume is False
    assert capsys.readouterr().out == (f'note: the file system of {prepared.path} does not support file locks (No '
                                       f'locks available): a second start of this name while it runs cannot be '
                                       f'detected\n')
    prepared.lock.release()
