"""`python -m gateway ...` is the same as the `sip-realtime-gateway` command."""

import sys

from gateway.cli import main

if __name__ == "__main__":
    sys.exit(main())
