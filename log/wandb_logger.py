"""Weights & Biases backend, through the real `wandb` client.

The mode follows wandb's own WANDB_MODE (online | offline | disabled) and the files go where wandb
puts them (WANDB_DIR, else ./wandb); the token comes from the
argument or, when that is empty, from WANDB_API_KEY (read by wandb itself). `wandb.init` is bounded
by `init_timeout`, so an unreachable server fails the start in that time instead of hanging.
Console capture, code saving, git and system metadata (host, program, command line) are off: only what is
logged explicitly leaves.
"""
from __future__ import annotations

import io
import os

import PIL.Image
import torch
from matplotlib.figure import Figure

from utils.atomic import atomic_write
from log.base import Logger

STEP_KEY = 'step'  # every metric is plotted against the step it was logged with


class WandbLogger(Logger):
    """Logs to one wandb run; metrics carry their own step in the `step` column."""

    name = 'wandb'
    optional = True

    def __init__(self, project: str, run_name: str, entity: str, api_key: str, tags: list[str],
                 description: str, init_timeout: float) -> None:
        import wandb

        self._wandb = wandb
        settings = wandb.Settings(init_timeout=init_timeout, api_key=api_key or None, console='off',
                                  save_code=False, disable_code=True, disable_git=True,
                                  x_disable_meta=True, silent=True)
        self._run = wandb.init(project=project, entity=entity or None, name=run_name, tags=list(tags),
                               notes=description, settings=settings)
        self._run.define_metric(STEP_KEY, hidden=True)
        self._run.define_metric('*', step_metric=STEP_KEY)
        self._texts: dict[str, str] = {}

    @property
    def run_path(self) -> str:
        """The local folder of this run (where wandb keeps its files and, offline, the .wandb log)."""
        return os.path.dirname(self._run.dir)

    def log_arguments(self, args: dict) -> None:
        """Store the arguments as the run config."""
        self._run.config.update(args, allow_val_change=True)

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        """Log one history row {name: value, 'step': step}; wandb's own row counter stays monotonic."""
        row = {name: value} if step is None else {name: value, STEP_KEY: step}
        self._run.log(row)

    def log_text(self, name: str, text: str) -> None:
        """Keep the whole text so far in the run summary under `name`."""
        self._texts[name] = self._texts.get(name, '') + text + ('' if text.endswith('\n') else '\n')
        self._run.summary[name] = self._texts[name]

    def log_figure(self, name: str, figure_or_png_path: Figure | str) -> None:
        """Log the figure (rendered to PNG here: wandb's own conversion needs pyplot) or PNG file as a wandb.Image."""
        if isinstance(figure_or_png_path, Figure):
            buffer = io.BytesIO()
            figure_or_png_path.savefig(buffer, format='png', dpi=100)
            buffer.seek(0)
            with PIL.Image.open(buffer) as picture:
                image = self._wandb.Image(picture.convert('RGBA'))
        else:
            image = self._wandb.Image(os.fspath(figure_or_png_path))
        self._run.log({name: image})

    def save_model(self, name: str, state_dict: dict) -> None:
        """Write models/<name>.pt in the run folder and hand it to wandb's file sync."""
        path = os.path.join(self._run.dir, 'models', *name.split('/')) + '.pt'
        atomic_write(path, lambda stream: torch.save(state_dict, stream))
        self._run.save(path, base_path=self._run.dir, policy='now')

    def finish(self) -> None:
        """Finish the run (offline: close the local log; online: upload what is left)."""
        self._run.finish()
