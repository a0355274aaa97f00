"""The original OS-KDFT logger API: `LogModuleController.Builder(...)....build()` and the facade it returns.

    logger = LogModuleController.Builder(name, project
        ).tags(tags).description(text).save_source_files(path).use_local(path_log
        ).use_wandb(user, token).use_neptune(user, token, mode='offline'
        ).credentials({'wandb_token': 'WANDB_API_KEY'}).build()

The facade checks every call once, masks secrets, and fans it out to each backend. Which argument keys hold
credentials is the application's to say (`credentials`); trackers start with them masked on the command line. An online
tracker that fails (at start or in any call) is reported once with a TrackerWarning and dropped;
the run goes on with the others. A failure of the local logger is raised: those files are the record
(but a failed file write, e.g. a full disk, is only counted there). `incomplete_outputs` lists, at the
end, the trackers dropped and the local outputs that missed writes.
"""
from __future__ import annotations

import os
import re
import warnings
from typing import Callable, Iterable, Mapping

import numpy as np
from matplotlib.figure import Figure

from log.base import Logger, check_figure, check_name, check_step, check_value, rounded
from log.local import LocalLogger
from log.neptune_logger import NEPTUNE_MODES, NeptuneLogger
from log.plots import det_figure
from log.redact import Redactor, masked_command_line
from log.wandb_logger import WandbLogger

TRACKERS: dict[str, type[Logger]] = {'wandb': WandbLogger, 'neptune': NeptuneLogger}
_ANSI = re.compile(r'\x1b\[[0-9;]*m')
_BANNER = re.compile(r'-+\w*-+')  # neptune's '----SomeException------' title line


def _check_credentials(call: str, user: str, token: str) -> None:
    """Raise TypeError naming the call when the user or token is not text."""
    for kind, value in (('user', user), ('token', token)):
        if not isinstance(value, str):
            raise TypeError(f'{call}: {kind} must be a str (may be empty), got {type(value).__name__}')


class TrackerWarning(RuntimeWarning):
    """An online tracker failed and was dropped; the run continues without it."""


def describe_failure(error: BaseException, redactor: Redactor) -> str:
    """One line: the exception type and the first line of its message, colours, banners and secrets removed."""
    lines = [line.strip() for line in _ANSI.sub('', str(error)).splitlines()
             if line.strip() and not _BANNER.fullmatch(line.strip())]
    return redactor.text(f"{type(error).__name__}: {lines[0][:300] if lines else '(no message)'}")


class LogModuleController(Logger):
    """The logger facade: one call, every backend."""

    name = 'controller'
    optional = False

    def __init__(self, backends: list[Logger], redactor: Redactor, dropped: dict[str, str] | None = None) -> None:
        self._backends = list(backends)
        self._redactor = redactor
        self._finished = False
        self._dropped = dict(dropped or {})  # tracker name → why it was dropped (or never started)

    @property
    def backends(self) -> tuple[str, ...]:
        """Names of the backends still active, e.g. ('local', 'wandb')."""
        return tuple(backend.name for backend in self._backends)

    def backend(self, name: str) -> Logger:
        """The active backend called `name` (KeyError naming the active ones otherwise)."""
        for backend in self._backends:
            if backend.name == name:
                return backend
        raise KeyError(f'no active backend {name!r}; active: {self.backends}')

    def _each(self, call: Callable[[Logger], None]) -> None:
        if self._finished:
            raise RuntimeError('the logger is finished; no call may follow finish()')
        for backend in list(self._backends):
            try:
                call(backend)
            except Exception as error:
                if not backend.optional:
                    raise
                self._backends.remove(backend)
                why = describe_failure(error, self._redactor)
                self._dropped[backend.name] = f'dropped after a failure ({why})'
                warnings.warn(f'{backend.name} tracker dropped after a failure, the run continues without it: '
                              f'{why}', TrackerWarning, stacklevel=3)

    def log_arguments(self, args: dict) -> None:
        """Record the arguments, credentials masked."""
        if not isinstance(args, dict):
            raise TypeError(f'log_arguments: expected a dict, got {type(args).__name__}')
        masked = self._redactor.arguments(args)
        self._each(lambda backend: backend.log_arguments(masked))

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        """Record one value of a metric (e.g. 'eer/val', 'loss/kd'), at `step` (the epoch) when given."""
        check_name('metric', name)
        value, step = rounded(name, check_value(name, value)), check_step(name, step)
        self._each(lambda backend: backend.log_metric(name, value, step))

    def log_text(self, name: str, text: str) -> None:
        """Append text to the text called `name`, secrets masked."""
        check_name('text', name)
        if not isinstance(text, str):
            raise TypeError(f'log_text {name!r}: text must be a str, got {type(text).__name__}')
        masked = self._redactor.text(text)
        self._each(lambda backend: backend.log_text(name, masked))

    def log_figure(self, name: str, figure_or_png_path: Figure | str) -> None:
        """Record a matplotlib figure or an existing PNG file."""
        check_name('figure', name)
        figure = check_figure(name, figure_or_png_path)
        self._each(lambda backend: backend.log_figure(name, figure))

    def log_det(self, name: str, scores: np.ndarray, labels: np.ndarray) -> None:
        """Draw the DET curve of trial `scores` with `labels` (1 target, 0 non-target) and log it as a figure."""
        check_name('figure', name)
        self.log_figure(name, det_figure(scores, labels, title=f'DET: {name}'))

    def save_model(self, name: str, state_dict: dict) -> None:
        """Store a model's state dict under `name` with every backend."""
        check_name('model', name)
        if not isinstance(state_dict, dict):
            raise TypeError(f'save_model {name!r}: expected a state dict, got {type(state_dict).__name__}')
        self._each(lambda backend: backend.save_model(name, state_dict))

    def finish(self) -> None:
        """Finish every backend once; later calls to finish do nothing."""
        if not self._finished:
            self._each(lambda backend: backend.finish())
            self._finished = True

    def incomplete_outputs(self) -> list[str]:
        """One line per output missing part of the run: local outputs with failed writes, dropped trackers."""
        dropped = [f'{name} tracker: {why}; nothing was logged to it after that' for name, why in self._dropped.items()]
        return [line for backend in self._backends for line in backend.incomplete_outputs()] + dropped

    class Builder:
        """Collects the run's identity and the loggers to use, then builds the facade."""

        def __init__(self, name: str, project: str) -> None:
            for kind, value in (('name', name), ('project', project)):
                if not isinstance(value, str) or not value or value in ('.', '..') or re.search(r'[/\\]', value):
                    raise ValueError(f"run {kind} {value!r} must be a non-empty folder name without '/' or '\\'")
            self._name, self._project = name, project
            self._tags: list[str] = []
            self._description = ''
            self._source_dir: str | None = None
            self._path_log: str | None = None
            self._trackers: dict[str, dict] = {}
            self._secret_keys: list[str] = []
            self._secret_environment: list[str] = []
            self._secret_values: list[str] = []

        def tags(self, tags: list[str]) -> LogModuleController.Builder:
            """Tags of the run on the trackers."""
            if not isinstance(tags, (list, tuple)) or not all(isinstance(tag, str) for tag in tags):
                raise TypeError(f'tags must be a list of str, got {tags!r}')
            self._tags = list(tags)
            return self

        def description(self, description: str) -> LogModuleController.Builder:
            """Description of the run on the trackers."""
            if not isinstance(description, str):
                raise TypeError(f'description must be a str, got {type(description).__name__}')
            self._description = description
            return self

        def save_source_files(self, path: str) -> LogModuleController.Builder:
            """Copy the *.py files under `path` into <run_dir>/source (needs use_local)."""
            if not os.path.isdir(path):
                raise NotADirectoryError(f'save_source_files: {path!r} is not a directory')
            self._source_dir = path
            return self

        def use_local(self, path_log: str) -> LogModuleController.Builder:
            """Write the local files into path_log/project/name (created if missing, never cleared)."""
            if not isinstance(path_log, str) or not path_log:
                raise ValueError(f'use_local: path_log must be a non-empty path, got {path_log!r}')
            self._path_log = path_log
            return self

        def use_wandb(self, user: str, token: str, init_timeout: float = 30.0) -> LogModuleController.Builder:
            """Also log to wandb (entity `user`; empty token: WANDB_API_KEY; mode: WANDB_MODE)."""
            _check_credentials('use_wandb', user, token)
            if init_timeout <= 0:
                raise ValueError(f'use_wandb: init_timeout must be > 0 seconds, got {init_timeout}')
            self._trackers['wandb'] = dict(project=self._project, entity=user, api_key=token,
                                           init_timeout=init_timeout)
            return self

        def use_neptune(self, user: str, token: str, mode: str | None = None, init_timeout: float = 15.0,
                        stop_timeout: float = 60.0) -> LogModuleController.Builder:
            """Also log to neptune project user/project (empty token: NEPTUNE_API_TOKEN).

            The mode is NEPTUNE_MODE when set (like WANDB_MODE for wandb), else `mode`, else 'async'.
            """
            _check_credentials('use_neptune', user, token)
            if init_timeout <= 0 or stop_timeout <= 0:
                raise ValueError(f'use_neptune: timeouts must be > 0 seconds, got init_timeout={init_timeout}, '
                                 f'stop_timeout={stop_timeout}')
            mode = os.environ.get('NEPTUNE_MODE') or mode or 'async'
            if mode not in NEPTUNE_MODES:
                raise ValueError(f'use_neptune: mode {mode!r} (argument or NEPTUNE_MODE) is not one of {NEPTUNE_MODES}')
            self._trackers['neptune'] = dict(project=f'{user}/{self._project}' if user else self._project,
                                             api_token=token, mode=mode, init_timeout=init_timeout,
                                             stop_timeout=stop_timeout)
            return self

        def credentials(self, keys_to_environment: Mapping[str, str],
                        values: Iterable[str] = ()) -> LogModuleController.Builder:
            """Argument keys that hold credentials, each with the environment variable that may hold it instead
            (e.g. {'wandb_token': 'WANDB_API_KEY'}), and credential `values` known beside the trackers' tokens.

            Those keys are masked by key in the logged arguments and on the command line the trackers record; the
            variables' values, `values` and the tokens given to use_wandb / use_neptune are masked wherever they
            appear.
            """
            pairs = dict(keys_to_environment)
            values = list(values)
            if not all(isinstance(item, str) for item in (*pairs, *pairs.values(), *values)):
                raise TypeError(f'credentials: keys, environment variable names and values must be str, got '
                                f'{pairs!r} and {len(values)} value(s)')
            self._secret_keys += list(pairs)
            self._secret_environment += list(pairs.values())
            self._secret_values += values
            return self

        @property
        def run_dir(self) -> str | None:
            """path_log/project/name, once use_local was called."""
            return None if self._path_log is None else os.path.join(self._path_log, self._project, self._name)

        def secrets(self) -> list[str]:
            """Every credential this run could use: the tokens given, the values given to `credentials` and those in
            its environment variables."""
            given = [settings.get('api_key') or settings.get('api_token') for settings in self._trackers.values()]
            environment = [os.environ.get(variable, '') for variable in self._secret_environment]
            return [secret for secret in given + self._secret_values + environment if secret]

        def build(self) -> LogModuleController:
            """Start every requested logger; a tracker that cannot start is warned about once and left out."""
            if self._path_log is None and not self._trackers:
                raise ValueError('no logger requested: call use_local, use_wandb and/or use_neptune before build()')
            if self._source_dir is not None and self._path_log is None:
                raise ValueError('save_source_files needs use_local: the copy goes into the local run directory')
            redactor = Redactor(self.secrets(), self._secret_keys)
            backends: list[Logger] = []
            not_started: dict[str, str] = {}
            if self.run_dir is not None:
                backends.append(LocalLogger(self.run_dir, redactor, self._source_dir))
            for tracker, settings in self._trackers.items():
                try:
                    with masked_command_line(redactor):  # trackers record sys.argv (wandb: its run metadata)
                        backends.append(TRACKERS[tracker](
                            run_name=self._name, tags=[redactor.text(t) for t in self._tags],
                            description=redactor.text(self._description), **settings))
                except Exception as error:
                    not_started[tracker] = f'could not start ({describe_failure(error, redactor)})'
                    warnings.warn(f'{tracker} tracker could not start, the run continues without it: '
                                  f'{describe_failure(error, redactor)}', TrackerWarning, stacklevel=2)
            return LogModuleController(backends, redactor, not_started)
