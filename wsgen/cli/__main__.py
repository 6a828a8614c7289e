"""``python -m wsgen.cli``: the command line."""
import sys

from wsgen.cli import main

sys.exit(main())
