"""Sketchpad: `python main.py` opens the app; `python main.py generate ...` runs headless."""

import sys

from sketchpad.cli import main

if __name__ == "__main__":
    sys.exit(main())
