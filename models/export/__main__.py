"""``python -m models.export``: see :mod:`models.export.cli`."""
import sys

from models.export.cli import main

sys.exit(main())
