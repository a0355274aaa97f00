"""Checkpoints are atomic and run directories are never overwritten."""
import os

import pytest
import torch

from trainer import checkpoint
from utils.errors import UserError


def test_atomic_save_roundtrip_and_failed_write_keeps_previous(tmp_path, monkeypatch):
    path = str(tmp_path / 'ckpt.pt')
    assert checkpoint.save_atomic({'w': torch.arange(5.0)}, path)
    before = open(path, 'rb').read()
    torch.testing.assert_close(checkpoint.load(path)['w'], torch.arange(5.0))

    real_save = torch.save

    def fail_part_way(obj, f, *a, **k):  # write some bytes, then fail like a full disk
        f.write(b'partial bytes')
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(torch, 'save', fail_part_way)
    with pytest.warns(UserWarning, match='No space left'):
        assert not checkpoint.save_atomic({'w': torch.zeros(5)}, path)
    monkeypatch.setattr(torch, 'save', real_save)
    assert open(path, 'rb').read() == before  # byte-identical previous checkpoint
    assert os.listdir(tmp_path) == ['ckpt.pt']  # no temporary file left behind
    torch.testing.assert_close(checkpoint.load(path)['w'], torch.arange(5.0))


def test_a_run_is_never_overwritten(tmp_path):
    first = checkpoint.prepare_run_dir(str(tmp_path), 'proj', 'exp', resume=False)
    assert (first.resume, first.note) == (False, '') and os.path.isdir(first.path)
    checkpoint.save_atomic({'w': 1}, os.path.join(first.path, checkpoint.LAST))
    (tmp_path / 'proj' / 'exp' / 'mine.txt').write_text('keep me')
    with pytest.raises(UserError, match='already exists .*resume=True'):
        checkpoint.prepare_run_dir(str(tmp_path), 'proj', 'exp', resume=False)
    assert sorted(os.listdir(first.path)) == [checkpoint.LAST, 'mine.txt']
    again = checkpoint.prepare_run_dir(str(tmp_path), 'proj', 'exp', resume=True)
    assert (again.path, again.resume) == (first.path, True)
    assert (tmp_path / 'proj' / 'exp' / 'mine.txt').read_text() == 'keep me'
    with pytest.raises(UserError, match='no run .*other.* to resume'):
        checkpoint.prepare_run_dir(str(tmp_path), 'proj', 'other', resume=True)
    assert not os.path.exists(tmp_path / 'proj' / 'other')


@pytest.mark.parametrize('resume', [False, True])
def test_a_directory_without_checkpoint_is_set_aside_not_deleted(tmp_path, resume):
    """What a start that stopped before its first save left is moved into attempts/<timestamp>/, byte for byte; a
    second such start gets its own folder; the run starts from epoch 1 (resume=True too, with a note)."""
    run = tmp_path / 'proj' / 'exp'
    (run / 'source').mkdir(parents=True)
    (run / 'parameters.txt').write_text('epoch: 2\n')
    (run / 'source' / 'main.py').write_text('print(1)\n')
    prepared = checkpoint.prepare_run_dir(str(tmp_path), 'proj', 'exp', resume=resume)
    assert prepared.path == str(run) and prepared.resume is False
    assert os.listdir(run) == [checkpoint.ATTEMPTS]
    [stamp] = os.listdir(run / checkpoint.ATTEMPTS)
    kept = run / checkpoint.ATTEMPTS / stamp
    assert (kept / 'parameters.txt').read_text() == 'epoch: 2\n'
    assert (kept / 'source' / 'main.py').read_text() == 'print(1)\n'
    assert str(kept) in prepared.note and ('resume=True' in prepared.note) == resume
    (run / 'parameters.txt').write_text('second try\n')  # the second start fails too
    checkpoint.prepare_run_dir(str(tmp_path), 'proj', 'exp', resume=resume)
    folders = sorted(os.listdir(run / checkpoint.ATTEMPTS))
    assert len(folders) == 2 and folders[0] == stamp
    assert (run / checkpoint.ATTEMPTS / folders[1] / 'parameters.txt').read_text() == 'second try\n'
    assert os.listdir(run) == [checkpoint.ATTEMPTS]


def test_an_empty_directory_is_used_as_it_is(tmp_path):
    (tmp_path / 'proj' / 'exp').mkdir(parents=True)
    prepared = checkpoint.prepare_run_dir(str(tmp_path), 'proj', 'exp', resume=False)
    assert prepared.resume is False and 'starts in it at epoch 1' in prepared.note
    assert os.listdir(prepared.path) == []


def test_unreadable_checkpoint_is_named(tmp_path):
    bad = tmp_path / 'bad.pt'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(RuntimeError, match='bad.pt'):
        checkpoint.load(str(bad))
