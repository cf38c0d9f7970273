"""``python -m fastdense`` is the ``fastdense`` command."""

import sys

from fastdense.cli import main

sys.exit(main())
