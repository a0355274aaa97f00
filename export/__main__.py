"""Entry point of `python -m export`: see export/cli.py for the subcommands. A user error (cli.main stops with its
one `error:` line as the message) exits with status 2, like main.py's."""
import sys

from export.cli import main
from utils.errors import EXIT_USER_ERROR

try:
    main()
except SystemExit as stop:
    if not isinstance(stop.code, str):
        raise
    print(stop.code, file=sys.stderr, flush=True)
    raise SystemExit(EXIT_USER_ERROR) from None
