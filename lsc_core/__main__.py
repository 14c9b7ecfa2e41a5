"""`python -m lsc_core`: see lsc_core/cli.py."""
import sys

from .cli import main

sys.exit(main())
