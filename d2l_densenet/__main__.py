"""``python -m d2l_densenet``: see ``cli.py``."""
import sys

from .cli import run

if __name__ == "__main__":
    sys.exit(run())
