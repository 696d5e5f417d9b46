"""`python -m rb` runs the same command as the `rb` script."""

import sys

from rb.main import main

sys.exit(main())
