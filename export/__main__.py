"""Entry point of `python -m export`: see export/cli.py for the subcommands."""
from export.cli import main
from utils.errors import exit_on_user_error

exit_on_user_error(main)
