"""Entry point of `python -m export`: see export/cli.py for the subcommands."""
from export.cli import main

main()
