"""`python -m vram` runs the command line."""

from .cli import run

run()
