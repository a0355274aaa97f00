"""One convention for every command (main.py, compare.py, python -m export, python -m data.prepare, python -m
data.corrupt, the bench scripts): a mistake the user can fix (an argument, a path, a data layout, a trial list, a
teacher id, a run directory, an input file) is one `error: <what, where, what to do>` line on stderr and exit status 2,
without a traceback; a failure of the work itself is exit status 1 (unexpected ones keep their traceback).

Code that checks user input raises UserError, or an exception of a documented kind that the checking step converts
with `user_errors(...)`, or SystemExit with a message (how arguments.py stops); command-line entry points run through
`exit_on_user_error` and parse options with this module's ArgumentParser.
"""
from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from typing import Callable, Iterator, NoReturn, TypeVar

T = TypeVar('T')

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


def exit_on_user_error(entry: Callable[[], T]) -> T:
    """Run a command-line entry point and return what it returns; a UserError, or a SystemExit carrying a message,
    ends the process with its one line on stderr and exit status 2."""
    try:
        return entry()
    except UserError as error:
        message = error
    except SystemExit as stop:
        if not isinstance(stop.code, str):
            raise
        message = UserError(stop.code)
    print(one_line(message), file=sys.stderr, flush=True)
    raise SystemExit(EXIT_USER_ERROR) from None


class ArgumentParser(argparse.ArgumentParser):
    """argparse under the convention: a usage mistake raises UserError (one `error:` line naming the option and
    pointing at --help) instead of printing the usage block; --help itself is argparse's."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f'{message} ({self.prog} --help lists the options)')
