"""``python -m pruning_encoder``: the ``pruning-encoder`` command line."""

from __future__ import annotations

import sys

from pruning_encoder.cli import main

if __name__ == "__main__":
    sys.exit(main())
