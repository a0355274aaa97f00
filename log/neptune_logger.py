"""Neptune backend, through the real `neptune` client (1.x API).

Modes: 'async' (default, never blocks a logging call), 'sync', 'offline' (operations kept under
.neptune/ of the working directory, or NEPTUNE_DATA_DIRECTORY, for a later `neptune sync`) and
'debug' (nothing kept). The token comes from the argument or, when empty, NEPTUNE_API_TOKEN
(read by neptune itself). Source upload, console capture and git metadata are off: the source
copy is the local logger's (with secrets masked), and only what is logged explicitly leaves.

Neptune cannot hold a value and a namespace at one path, while the trainer logs a total beside its parts
('loss' and 'loss/kd', 'kd/loss' and 'kd/loss/kd'): a metric whose last segment names such a total is logged one
level down in neptune ('loss' -> 'loss/total'; `neptune_path`), the local files keep the names as logged.
"""
from __future__ import annotations

import io
import os
import warnings

import torch
from matplotlib.figure import Figure

from log.base import Logger

NEPTUNE_MODES = ('async', 'sync', 'offline', 'debug')
# last segment of a metric that is the total of metrics logged under it -> the leaf it gets in neptune
TOTAL_LEAVES = {'loss': 'total'}


def neptune_path(name: str) -> str:
    """Where metric `name` goes in neptune: 'loss' -> 'loss/total', 'kd/loss' -> 'kd/loss/total', else `name`."""
    leaf = TOTAL_LEAVES.get(name.rsplit('/', 1)[-1])
    return f'{name}/{leaf}' if leaf else name


class NeptuneLogger(Logger):
    """Logs to one neptune run; metrics become float series, texts and models uploaded files."""

    name = 'neptune'
    optional = True

    def __init__(self, project: str, api_token: str, mode: str, run_name: str, tags: list[str],
                 description: str, init_timeout: float, stop_timeout: float) -> None:
        if mode not in NEPTUNE_MODES:
            raise ValueError(f'neptune mode {mode!r} is not one of {NEPTUNE_MODES}')
        import neptune
        from neptune.common.backends import utils as retry_policy
        from neptune.types import File
        from neptune.utils import stringify_unsupported

        self._file = File
        if not torch.cuda.is_available():  # no GPU, no GPU metrics: neptune's "Info (NVML)" warning says nothing
            warnings.filterwarnings('ignore', message=r'Info \(NVML\)')
        self._stringify = stringify_unsupported
        self._stop_timeout = stop_timeout
        # neptune retries an unreachable server for NEPTUNE_RETRIES_TIMEOUT (60 s) with back-off;
        # the start is bounded by `init_timeout` instead (the last back-off may overshoot it by up to 2x)
        default_retries = retry_policy.retries_timeout
        retry_policy.retries_timeout = min(default_retries, init_timeout)
        try:
            self._run = neptune.init_run(project=project, api_token=api_token or None, mode=mode, name=run_name,
                                         tags=list(tags), description=description, source_files=[],
                                         capture_stdout=False, capture_stderr=False, git_ref=False)
        finally:
            retry_policy.retries_timeout = default_retries
        self._texts: dict[str, str] = {}

    def log_arguments(self, args: dict) -> None:
        """Store the arguments under `parameters/` (lists, None etc. as their text)."""
        self._run['parameters'] = self._stringify(args)

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        """Append the value to the float series of `name` (at `neptune_path(name)`)."""
        self._run[neptune_path(name)].append(value, step=step)

    def log_text(self, name: str, text: str) -> None:
        """Upload the whole text so far as `name` (a .txt file: no length limit, unlike string series)."""
        self._texts[name] = self._texts.get(name, '') + text + ('' if text.endswith('\n') else '\n')
        self._run[name].upload(self._file.from_content(self._texts[name], extension='txt'))

    def log_figure(self, name: str, figure_or_png_path: Figure | str) -> None:
        """Upload the figure, or the PNG file's bytes as they are now, as an image."""
        if isinstance(figure_or_png_path, Figure):
            content = self._file.as_image(figure_or_png_path)
        else:
            with open(os.fspath(figure_or_png_path), 'rb') as handle:
                content = self._file.from_content(handle.read(), extension='png')
        self._run[name].upload(content)

    def save_model(self, name: str, state_dict: dict) -> None:
        """Upload the torch.save bytes of the state dict as models/<name>."""
        buffer = io.BytesIO()
        torch.save(state_dict, buffer)
        self._run[f'models/{name}'].upload(self._file.from_content(buffer.getvalue(), extension='pt'))

    def finish(self) -> None:
        """Stop the run, waiting at most `stop_timeout` seconds for queued operations."""
        self._run.stop(seconds=self._stop_timeout)
