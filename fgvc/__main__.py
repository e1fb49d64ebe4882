"""``python -m fgvc``, the form torchrun launches: ``torchrun --nproc_per_node=4 -m fgvc train ...``."""

import sys

from fgvc.apps.cli import main

sys.exit(main())
