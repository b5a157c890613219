"""Benchmark: CPU cost of one JSON log line, with and without the secret filter.

    .venv/bin/python bench/log_record_cost.py

A typical `call.ended`-like `log_event` (a message and eight fields) goes through the real
handler `configure_logging` installs (JsonFormatter + SecretFilter) into a null stream, with
three configured secrets. Printed: microseconds per record without the filter, with it, and
with it on a websockets DEBUG header line that needs the credential pattern. "Without" still
has the formatter's own share (string fields checked for credential shapes, the line for the
configured secrets). Measured (2 cores shared with other work, noisy): 10.7 us per log_event
before value redaction existed, 12.6-13.0 us with all of it.
"""

from __future__ import annotations

import io
import logging
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.observe.logs import SecretFilter, configure_logging, log_event, set_secrets


class _NullStream(io.StringIO):
    def write(self, text: str) -> int:
        return len(text)


def per_record_us(stmt, number: int = 20000) -> float:
    return min(timeit.repeat(stmt, number=number, repeat=5)) / number * 1e6


def main() -> None:
    configure_logging("INFO", "json", _NullStream())
    set_secrets(["sk-test-0123456789abcdef", "control-token-abcdef", "sip-password-1"])
    handler = logging.getLogger().handlers[0]
    log = logging.getLogger("gateway.bench")
    ws_log = logging.getLogger("websockets.client")
    ws_log.setLevel(logging.DEBUG)

    def event() -> None:
        log_event(
            log,
            "call.ended",
            "call ended (remote_bye)",
            call_id="a84b4c76e66710@pc33.example.com",
            cause="remote_bye",
            route="default",
            duration_s=12.34,
            packets_in=617,
            packets_out=620,
            lost=0,
            jitter_ms=1.2,
        )

    def header() -> None:
        ws_log.debug("> %s: %s", "Authorization", "Bearer sk-test-0123456789abcdef")

    with_filter = per_record_us(event)
    with_filter_ws = per_record_us(header)
    handler.filters.clear()
    without = per_record_us(event)
    without_ws = per_record_us(header)
    handler.addFilter(SecretFilter())
    print(f"log_event, 8 fields:      {without:6.2f} us without filter, {with_filter:6.2f} us with")
    print(
        f"websockets header DEBUG:  {without_ws:6.2f} us without filter, {with_filter_ws:6.2f} us with"
    )


if __name__ == "__main__":
    main()
