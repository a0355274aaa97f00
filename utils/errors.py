"""User errors: mistakes the user can fix (an argument, a path, a data layout, a trial list, a teacher id, a run
directory), reported as one `error: <what, where, what to do>` line and exit status 2, without a traceback.

Everything else is unexpected and keeps its traceback. Code that checks user input raises UserError, or an exception
of a documented kind that the checking step converts with `user_errors(...)`; command-line entry points run through
`exit_on_user_error`.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator

EXIT_USER_ERROR = 2  # exit status of a run stopped by a user error (argparse's convention for bad usage)


class UserError(Exception):
    """A mistake the user can fix; the message says what is wrong, where, and what to do."""


@contextmanager
def user_errors(*kinds: type[BaseException]) -> Iterator[None]:
    """Inside the block, an exception of `kinds`, or a SystemExit carrying a message (how arguments.py stops), is a
    user error: re-raised as UserError with the same text, chained to the original."""
    try:
        yield
    except UserError:
        raise
    except SystemExit as stop:
        if not isinstance(stop.code, str):
            raise
        raise UserError(stop.code) from stop
    except kinds as error:
        raise UserError(str(error)) from error


def one_line(error: BaseException) -> str:
    """The `error: ...` line printed for a user error."""
    return 'error: ' + ' '.join(str(error).split('\n')).strip()


def exit_on_user_error(entry: Callable[[], None]) -> None:
    """Run a command-line entry point; a UserError ends the process with its one line on stderr and exit status 2."""
    try:
        entry()
    except UserError as error:
        print(one_line(error), file=sys.stderr, flush=True)
        raise SystemExit(EXIT_USER_ERROR) from None
