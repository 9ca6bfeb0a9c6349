import sys

from xfer_t5x.cli import main

sys.exit(main())
