"""Per-frame cost of the Realtime JSON hot paths (prints microseconds per operation).

tx: one 20 ms G.711 append (160 B) and one 100 ms append (800 B), precomputed prefix/suffix
    (protocol.input_audio_append) against orjson.dumps of the dict and stdlib json.dumps.
rx: parsing a response.output_audio.delta (protocol.ServerEventParser) against plain
    orjson.loads + b64decode, with the 1-4 KB deltas the service sends.
"""

from __future__ import annotations

import base64
import json
import os
import timeit

import orjson

from gateway.realtime import protocol


def per_op_us(stmt, number: int = 20000) -> float:
    best = min(timeit.repeat(stmt, number=number, repeat=5))
    return best / number * 1e6


def main() -> None:
    for size in (160, 800):
        audio = os.urandom(size)
        print(
            f"tx append {size:4d} B: fast path {per_op_us(lambda a=audio: protocol.input_audio_append(a)):.2f} us | "
            f"orjson dict {per_op_us(lambda a=audio: orjson.dumps({'type': 'input_audio_buffer.append', 'audio': base64.b64encode(a).decode()})):.2f} us | "
            f"json dict {per_op_us(lambda a=audio: json.dumps({'type': 'input_audio_buffer.append', 'audio': base64.b64encode(a).decode()}).encode()):.2f} us"
        )
    parser = protocol.ServerEventParser()
    for size in (1200, 4000):
        frame = orjson.dumps(
            {
                "type": "response.output_audio.delta",
                "event_id": "event_1",
                "response_id": "resp_1",
                "item_id": "item_1",
                "output_index": 0,
                "content_index": 0,
                "delta": base64.b64encode(os.urandom(size)).decode(),
            }
        )
        print(
            f"rx delta {size:4d} B: parser {per_op_us(lambda f=frame: parser.parse(f)):.2f} us | "
            f"orjson+b64 {per_op_us(lambda f=frame: base64.b64decode(orjson.loads(f)['delta'])):.2f} us"
        )


if __name__ == "__main__":
    main()
