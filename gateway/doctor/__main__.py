"""`python -m gateway.doctor`: the same as `sip-realtime-gateway check`."""

import sys

from gateway.doctor.cli import main

sys.exit(main())
