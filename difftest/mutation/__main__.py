"""python -m difftest.mutation: the full mutation check of the C core (see runner.py)."""

import sys

from difftest.mutation.runner import main

sys.exit(main(sys.argv[1:]))
