"""``python -m ostiary`` runs the command-line interface."""

from ostiary.cli import main

main()
