"""Building the run's logger from the run's arguments (the keys of the application's `arguments.py`).

use_wandb / use_neptune are settings: each enabled tracker is added through a small
key -> enabler registry, with its user, token (empty: taken from the environment) and mode keys.
Which keys hold credentials is passed in by the application (log/ does not import it).
"""
from __future__ import annotations

import os
from typing import Callable, Mapping

from log.builder import LogModuleController

Builder = LogModuleController.Builder

# argument key that turns a tracker on -> how to add it from the arguments
TRACKER_SWITCHES: dict[str, Callable[[Builder, dict], Builder]] = {
    'use_wandb': lambda builder, args: builder.use_wandb(args['wandb_user'], args['wandb_token']),
    'use_neptune': lambda builder, args: builder.use_neptune(args['neptune_user'], args['neptune_token'],
                                                             mode=args['neptune_mode']),
}


def build_logger(args: dict, run_dir: str, source_dir: str, credentials: Mapping[str, str]) -> LogModuleController:
    """The rank-0 logger of a run: local files in `run_dir` (= path_log/project/name), the sources of
    `source_dir` copied there, plus every tracker switched on; the (masked) arguments logged first.

    `credentials`: each argument key holding a credential -> the environment variable that may hold it instead
    (arguments.ENV_CREDENTIALS); those values are kept out of every file written.
    """
    missing = [key for key in credentials if not isinstance(args.get(key), str)]
    if missing:
        raise ValueError(f'build_logger: credential keys {missing} are not text arguments of the run')
    expected = os.path.join(args['path_log'], args['project'], args['name'])
    if os.path.abspath(expected) != os.path.abspath(run_dir):
        raise ValueError(f"build_logger: run_dir {run_dir!r} is not path_log/project/name = {expected!r}")
    builder = (Builder(args['name'], args['project'])
               .tags(args['tags'])
               .description(args['description'])
               .save_source_files(source_dir)
               .use_local(args['path_log'])
               .credentials(credentials, [args[key] for key in credentials]))
    for switch, enable in TRACKER_SWITCHES.items():
        assert isinstance(args[switch], bool), (switch, args[switch])  # arguments.check_values checked the types
        if args[switch]:
            enable(builder, args)
    logger = builder.build()
    logger.log_arguments(args)
    return logger
