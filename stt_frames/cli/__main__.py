"""``python -m stt_frames.cli``: the ``stt-frames`` command."""

import sys

from . import main

sys.exit(main())
