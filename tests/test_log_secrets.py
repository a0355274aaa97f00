"""No token appears in any file the loggers write: local files, source copy, wandb and neptune offline data, with the
tokens on the command line the trackers record."""
import sys

import numpy as np
import pytest

from arguments import ENV_CREDENTIALS, get_args
from helpers_log import all_files, files_containing, fresh_wandb  # noqa: F401  (fresh_wandb is a fixture)
from log import build_logger
from log.redact import Redactor, masked_command_line

WANDB_TOKEN = 'wb-FAKE-0123456789abcdef0123456789abcdef'
NEPTUNE_TOKEN = 'np-FAKE-TOKEN-fedcba9876543210'
ENV_TOKEN = 'env-FAKE-wandb-key-00000000000000000000'


def test_tokens_never_reach_a_written_file(tmp_path, monkeypatch, fresh_wandb):
    monkeypatch.chdir(tmp_path)                       # neptune offline data: ./.neptune
    monkeypatch.setenv('WANDB_MODE', 'offline')
    monkeypatch.setenv('WANDB_DIR', str(tmp_path / 'wandb_root'))
    monkeypatch.setenv('WANDB_API_KEY', ENV_TOKEN)
    monkeypatch.delenv('NEPTUNE_API_TOKEN', raising=False)
    (tmp_path / 'wandb_root').mkdir()
    source = tmp_path / 'code'
    (source / 'pkg').mkdir(parents=True)
    (source / 'main.py').write_text(f"WANDB = '{WANDB_TOKEN}'\nNEPTUNE = '{NEPTUNE_TOKEN}'\n")
    (source / 'pkg' / 'env.py').write_text(f"# exported earlier: WANDB_API_KEY={ENV_TOKEN}\n")
    argv = [f'path_log={tmp_path / "runs"}', 'use_wandb=True', 'use_neptune=True', 'neptune_mode=offline',
            'neptune_user=workspace', f'wandb_token={WANDB_TOKEN}', f'neptune_token={NEPTUNE_TOKEN}',
            f'description=pasted by mistake: {NEPTUNE_TOKEN}']
    monkeypatch.setattr(sys, 'argv', ['main.py', *argv])  # as typed: wandb records the command line
    args = get_args(argv)
    run_dir = tmp_path / 'runs' / args['project'] / args['name']
    run_dir.mkdir(parents=True)
    logger = build_logger(args, str(run_dir), str(source), ENV_CREDENTIALS)
    assert logger.backends == ('local', 'wandb', 'neptune')
    assert sys.argv == ['main.py', *argv]                     # masked only while the trackers started
    logger.log_metric('eer/val', 5.0, step=0)
    logger.log_text('notes', f'someone printed the token {WANDB_TOKEN}')
    logger.log_det('det/final', np.array([0.9, 0.2, 0.7, 0.4]), np.array([1, 0, 1, 0]))
    logger.finish()

    written = {root: all_files(str(root)) for root in (run_dir, tmp_path / 'wandb_root', tmp_path / '.neptune')}
    assert all(len(files) >= 3 for files in written.values()), written
    for root in written:
        for token in (WANDB_TOKEN, NEPTUNE_TOKEN, ENV_TOKEN):
            assert files_containing(str(root), token) == [], f'{token} leaked under {root}'
    assert (run_dir / 'source' / 'main.py').read_text() == "WANDB = '***'\nNEPTUNE = '***'\n"
    assert (run_dir / 'source' / 'pkg' / 'env.py').read_text() == '# exported earlier: WANDB_API_KEY=***\n'
    parameters = (run_dir / 'parameters.txt').read_text().splitlines()
    assert 'wandb_token: ***' in parameters and 'neptune_token: ***' in parameters
    assert 'description: pasted by mistake: ***' in parameters
    assert (run_dir / 'texts' / 'notes.txt').read_text() == 'someone printed the token ***\n'


@pytest.mark.parametrize('item, masked', [
    (f'wandb_token={WANDB_TOKEN}', 'wandb_token=***'),           # by key
    ('neptune_token=short', 'neptune_token=***'),                # by key, a value not known as a secret
    (f'description=see {ENV_TOKEN} here', 'description=see *** here'),  # a known secret inside another value
    ('wandb_token=', 'wandb_token='), ('epoch=3', 'epoch=3'), ('main.py', 'main.py')])
def test_command_line_is_masked_while_trackers_start(monkeypatch, item, masked):
    redactor = Redactor([ENV_TOKEN, WANDB_TOKEN], secret_keys=['wandb_token', 'neptune_token'])
    monkeypatch.setattr(sys, 'argv', ['main.py', item])
    with masked_command_line(redactor):
        seen = list(sys.argv)
    assert seen == ['main.py', masked] and sys.argv == ['main.py', item]
    with pytest.raises(RuntimeError), masked_command_line(redactor):
        raise RuntimeError('a tracker failed to start')
    assert sys.argv == ['main.py', item]                     # restored after a failure too
