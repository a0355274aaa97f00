"""Checkpoints are atomic and run directories are never overwritten."""
import os

import pytest
import torch

from trainer import checkpoint


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


def test_run_dir_is_never_overwritten(tmp_path):
    run = checkpoint.prepare_run_dir(str(tmp_path), 'proj', 'exp', resume=False)
    (tmp_path / 'proj' / 'exp' / 'mine.txt').write_text('keep me')
    with pytest.raises(SystemExit, match='resume=True'):
        checkpoint.prepare_run_dir(str(tmp_path), 'proj', 'exp', resume=False)
    assert (tmp_path / 'proj' / 'exp' / 'mine.txt').read_text() == 'keep me'
    with pytest.raises(SystemExit, match='no checkpoint to resume'):
        checkpoint.prepare_run_dir(str(tmp_path), 'proj', 'exp', resume=True)
    checkpoint.save_atomic({}, os.path.join(run, checkpoint.LAST))
    assert checkpoint.prepare_run_dir(str(tmp_path), 'proj', 'exp', resume=True) == run


def test_unreadable_checkpoint_is_named(tmp_path):
    bad = tmp_path / 'bad.pt'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(RuntimeError, match='bad.pt'):
        checkpoint.load(str(bad))
