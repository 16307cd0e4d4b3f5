"""Allows ``python -m sshgate``."""

from sshgate.cli import main

main()
