"""The optional compiled speedups, built the way websockets builds its own: the jitter buffer,
the inbound and outbound RTP paths and the outbound tick (gateway/media/_jitter*.c, _inbound*.c,
_outbound.c, _playout*.c, _tick.c, _clock.c: one extension, gateway.media._jitter) and the WebSocket append
frames (gateway/_wsframe.c). Everything else about the package is in pyproject.toml.

SRG_BUILD_EXTENSION=yes makes a failed compile an error (CI, the Docker image); =no skips the
extension; unset, a machine without a compiler still installs and runs the pure-Python buffer.
"""

import os
import sys

from setuptools import Extension, setup

build = os.environ.get("SRG_BUILD_EXTENSION", "").lower()
# No fused multiply-add: the C buffer must round exactly as the Python one (tests compare them).
# Hidden visibility: the jb_* functions shared by its two files are not exported (only PyInit).
compile_args = [] if sys.platform == "win32" else ["-ffp-contract=off", "-fvisibility=hidden"]
ext_modules = []
if build != "no":
    ext_modules.append(
        Extension(
            "gateway.media._jitter",
            sources=[
                "gateway/media/_jitter.c",
                "gateway/media/_jitter_core.c",
                "gateway/media/_inbound.c",
                "gateway/media/_inbound_reception.c",
                "gateway/media/_outbound.c",
                "gateway/media/_playout.c",
                "gateway/media/_playout_type.c",
                "gateway/media/_tick.c",
                "gateway/media/_clock.c",
            ],
            depends=[
                "gateway/media/_jitter.h",
                "gateway/media/_inbound.h",
                "gateway/media/_playout.h",
            ],
            extra_compile_args=compile_args,
            optional=build != "yes",
        )
    )
    # The voice session's audio append frames (gateway/wsock.py has the pure twins).
    ext_modules.append(
        Extension(
            "gateway._wsframe",
            sources=["gateway/_wsframe.c"],
            extra_compile_args=compile_args,
            optional=build != "yes",
        )
    )

setup(ext_modules=ext_modules)
