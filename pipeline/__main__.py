"""`python -m pipeline ...` is the `interbrain` command."""
import sys

from pipeline.cli import main

sys.exit(main())
