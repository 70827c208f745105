"""`python -m selfimprove`."""

import sys

try:
    from selfimprove.cli import main
except KeyboardInterrupt:  # Ctrl-C while the command line itself is being imported
    print("interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
