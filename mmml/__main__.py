"""`python -m mmml ...`: the same as the `mmml` command."""

import sys

from mmml.cli import main

sys.exit(main())
