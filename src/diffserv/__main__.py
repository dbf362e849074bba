"""`python -m diffserv` runs the command line."""

import sys

from diffserv.cli.main import main

sys.exit(main())
