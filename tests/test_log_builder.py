"""The builder API, build_logger's use of arguments.py keys, and dropping trackers that fail mid-run."""
import ast
import glob
import os
import warnings

import pytest
import wandb

from arguments import ENV_CREDENTIALS, get_args
from helpers_log import fresh_wandb  # noqa: F401  (a fixture)
from log import TRACKERS, LogModuleController, NeptuneLogger, TrackerWarning, WandbLogger, build_logger

Builder = LogModuleController.Builder


def demo_args(tmp_path, *overrides):
    return get_args([f'path_log={tmp_path / "runs"}', *overrides])


def test_build_logger_reads_the_argument_keys(tmp_path):
    source = tmp_path / 'code'
    source.mkdir()
    (source / 'main.py').write_text('print(1)\n')
    args = demo_args(tmp_path)
    run_dir = os.path.join(args['path_log'], args['project'], args['name'])
    logger = build_logger(args, run_dir, str(source), ENV_CREDENTIALS)
    assert logger.backends == ('local',)            # use_wandb / use_neptune default to False
    logger.finish()
    parameters = open(os.path.join(run_dir, 'parameters.txt')).read().splitlines()
    assert len(parameters) == len(args) and f"name: {args['name']}" in parameters
    assert 'use_wandb: False' in parameters and f"tags: {args['tags']}" in parameters
    assert open(os.path.join(run_dir, 'source', 'main.py')).read() == 'print(1)\n'
    with pytest.raises(ValueError, match='is not path_log/project/name'):
        build_logger(args, str(tmp_path / 'elsewhere'), str(source), ENV_CREDENTIALS)
    with pytest.raises(AssertionError):  # arguments.check_values refuses it for the user
        build_logger({**args, 'use_neptune': 'yes'}, run_dir, str(source), ENV_CREDENTIALS)
    with pytest.raises(ValueError, match=r"credential keys \['api_secret'\]"):
        build_logger(args, run_dir, str(source), {'api_secret': 'API_SECRET'})


def test_build_logger_starts_the_trackers_switched_on(tmp_path, monkeypatch, fresh_wandb):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('WANDB_MODE', 'offline')
    monkeypatch.setenv('WANDB_DIR', str(tmp_path))
    args = demo_args(tmp_path, 'use_wandb=True', 'use_neptune=True', 'neptune_mode=offline')
    run_dir = os.path.join(args['path_log'], args['project'], args['name'])
    logger = build_logger(args, run_dir, str(tmp_path), ENV_CREDENTIALS)
    assert logger.backends == ('local', 'wandb', 'neptune')
    assert isinstance(logger.backend('wandb'), TRACKERS['wandb'])
    assert isinstance(logger.backend('neptune'), TRACKERS['neptune'])
    logger.finish()


def test_a_tracker_failing_mid_run_is_dropped_with_one_warning(tmp_path, monkeypatch, fresh_wandb):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('WANDB_MODE', 'offline')
    monkeypatch.setenv('WANDB_DIR', str(tmp_path))
    logger = (Builder('run', 'proj').use_local(str(tmp_path / 'runs')).use_wandb('', '')
              .use_neptune('', '', mode='offline').build())
    logger.log_metric('eer', 5.0, step=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        logger.log_text('eer', 'a text where neptune already has a float series')  # neptune refuses
        wandb.finish()                                                          # the wandb run ends under us
        for epoch in range(1, 4):
            logger.log_metric('eer', 5.0 - epoch, step=epoch)
        logger.finish()
    messages = [str(w.message) for w in caught if issubclass(w.category, TrackerWarning)]
    assert len(messages) == 2, messages
    assert messages[0].startswith('neptune tracker dropped') and 'has no attribute upload' in messages[0]
    assert messages[1].startswith('wandb tracker dropped') and 'is finished' in messages[1]
    assert logger.backends == ('local',)
    run_dir = tmp_path / 'runs' / 'proj' / 'run'
    assert (run_dir / 'eer.txt').read_text().splitlines() == [f'[{e}] eer: {5.0 - e}' for e in range(4)]
    assert (run_dir / 'texts' / 'eer.txt').read_text() == 'a text where neptune already has a float series\n'


def test_builder_refuses_bad_settings_with_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="run name 'a/b'"):
        Builder('a/b', 'proj')
    with pytest.raises(ValueError, match="run project ''"):
        Builder('run', '')
    with pytest.raises(TypeError, match='tags must be a list of str'):
        Builder('run', 'proj').tags('single')
    with pytest.raises(NotADirectoryError, match='missing'):
        Builder('run', 'proj').save_source_files(str(tmp_path / 'missing'))
    with pytest.raises(ValueError, match='no logger requested'):
        Builder('run', 'proj').build()
    with pytest.raises(ValueError, match='save_source_files needs use_local'):
        Builder('run', 'proj').save_source_files(str(tmp_path)).use_neptune('', '', mode='debug').build()
    with pytest.raises(ValueError, match="mode 'online'"):
        Builder('run', 'proj').use_neptune('', '', mode='online')
    with pytest.raises(ValueError, match='init_timeout must be > 0'):
        Builder('run', 'proj').use_wandb('', '', init_timeout=0)
    with pytest.raises(TypeError, match='use_wandb: token must be a str'):
        Builder('run', 'proj').use_wandb('', None)
    with pytest.raises(TypeError, match='credentials: keys, environment variable names and values must be str'):
        Builder('run', 'proj').credentials({'wandb_token': None})
    assert TRACKERS == {'wandb': WandbLogger, 'neptune': NeptuneLogger}


def test_the_run_directory_is_path_log_project_name_and_never_cleared(tmp_path):
    run_dir = tmp_path / 'runs' / 'proj' / 'run'
    run_dir.mkdir(parents=True)
    (run_dir / 'existing.txt').write_text('keep me')
    builder = Builder('run', 'proj').use_local(str(tmp_path / 'runs'))
    assert builder.run_dir == str(run_dir)
    logger = builder.build()
    logger.log_metric('loss/kd', 1.0, step=0)
    logger.finish()
    assert (run_dir / 'existing.txt').read_text() == 'keep me'
    assert (run_dir / 'loss' / 'kd.txt').read_text() == '[0] loss/kd: 1.0\n'


def test_import_log_is_this_package():
    import log
    repository = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert os.path.dirname(os.path.abspath(log.__file__)) == os.path.join(repository, 'log')
    assert log.build_logger is build_logger


def test_log_imports_neither_the_application_arguments_nor_the_trainer():
    """log/ is below the application: the credential keys are passed in, nothing is imported from above."""
    repository = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    imported = {}
    for path in sorted(glob.glob(os.path.join(repository, 'log', '*.py'))):
        with open(path, encoding='utf-8') as handle:
            tree = ast.parse(handle.read())
        names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        names += [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module]
        imported[os.path.basename(path)] = {name.split('.')[0] for name in names}
    assert 'builder.py' in imported and 'log' in imported['builder.py']  # the walk saw the package's own imports
    upward = {name: sorted(tops & {'arguments', 'trainer', 'main', 'export'}) for name, tops in imported.items()}
    assert all(not tops for tops in upward.values()), upward
