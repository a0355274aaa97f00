"""User errors: what the checks raise becomes one UserError with the same text; anything else passes unchanged; the
entry point prints one `error:` line and exits with status 2."""
import pytest

from utils.errors import EXIT_USER_ERROR, UserError, exit_on_user_error, user_errors


def test_listed_kinds_and_argument_stops_become_user_errors():
    with pytest.raises(UserError, match='^no such folder$') as stop:
        with user_errors(FileNotFoundError, ValueError):
            raise FileNotFoundError('no such folder')
    assert isinstance(stop.value.__cause__, FileNotFoundError)
    with pytest.raises(UserError, match="^argument 'epoch': got 0$"):
        with user_errors(ValueError):
            raise SystemExit("argument 'epoch': got 0")


def test_other_failures_pass_unchanged():
    with pytest.raises(KeyError):
        with user_errors(ValueError):
            raise KeyError('a bug')
    with pytest.raises(SystemExit) as stop:
        with user_errors(ValueError):
            raise SystemExit(0)
    assert stop.value.code == 0


def test_the_entry_point_prints_one_line_and_exits_2(capsys):
    def entry():
        raise UserError('path_train: /data/vox\nis empty')

    with pytest.raises(SystemExit) as stop:
        exit_on_user_error(entry)
    assert stop.value.code == EXIT_USER_ERROR == 2
    assert capsys.readouterr().err == 'error: path_train: /data/vox is empty\n'
