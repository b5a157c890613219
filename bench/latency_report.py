"""The latency bench's report: the rows each API prints (what they mean: bench/latency.py and
bench/latency_live.py), the tables, and the merge of several gateway processes' figures."""

from __future__ import annotations

from typing import Any

from bench.latency_probe import SAMPLE_LISTS, summary


def merge_workers(
    parts: list[dict[str, Any]], raws: list[dict[str, list[float]]]
) -> dict[str, Any]:
    """One result for N calls split over several gateway processes: percentiles over every
    worker's samples, CPU summed, counters added, worst case of the rest."""
    merged = dict(parts[0])
    for key in ("calls", "answered", "set_up", "append_bytes_per_s", "expected_bytes_per_s"):
        merged[key] = sum(p[key] for p in parts)
    for key in (
        "appends_dropped",
        "not_flushed",
        "preempted_per_s",
        "inbound_late",
        "inbound_concealed",
        "inbound_reordered",
    ):
        merged[key] = round(sum(p[key] for p in parts), 1)
    for key in ("cpu_pct", "server_cpu_pct", "callers_cpu_pct", "rss_mib"):
        merged[key] = round(sum(p[key] for p in parts), 1)
    for key in ("unmatched_deltas", "playout_trimmed_bytes"):
        merged[key] = sum(p[key] for p in parts)
    answered = max(1, merged["answered"])
    for key in ("cpu_us_per_call_per_20ms", "rss_kib_per_call"):  # weighted by calls
        merged[key] = round(sum(p[key] * p["answered"] for p in parts) / answered, 1)
    for key in (
        "setup_s",
        "steal_pct",
        "clock_late_p50_ms",
        "clock_late_p99_ms",
        "bot_packets_after_speech_max",
    ):
        merged[key] = max(p[key] for p in parts)
    merged["window_ms"] = round(sum(p["window_ms"] for p in parts) / len(parts), 1)
    merged["cpu_pct_each"] = [p["cpu_pct"] for p in parts]
    merged["problems"] = {k: v for p in parts for k, v in p["problems"].items()}
    merged["warnings"] = {k: v for p in parts for k, v in p["warnings"].items()}
    for name in SAMPLE_LISTS:
        merged[name] = summary([x for raw in raws for x in raw[name]])
    return merged


ROWS = (
    ("rx_to_written", "1. RTP read -> append written (total)", ""),
    ("hold", "1a. of which jitter-buffer hold (read -> released)", "by design"),
    ("release_to_written", "1b. of which released -> append written", "<= 1 ms"),
    ("sent_delta_to_packet", "2. first delta written by the server -> first RTP sent", ""),
    ("sent_delta_to_queued", "2a. of which written by the server -> in playout queue", "<= 2 ms"),
    ("delta_to_queued", "2a'. of 2a: read from the socket -> in playout queue", ""),
    ("queued_to_packet", "2b. of which wait for the 20 ms frame + send", "by design"),
    (
        "sent_speech_to_last_bot",
        "3. speech_started written by the server -> last bot RTP",
        "<= 20 ms",
    ),
    ("speech_to_last_bot", "3'. speech_started read from the socket -> last bot RTP", ""),
    ("speech_to_flush", "3a. speech_started read -> playout flushed", ""),
    ("rtp_socket_wait", "4a. RTP written by the caller -> read by the gateway", ""),
    ("event_socket_wait", "4b. server event written -> read by the gateway", ""),
    ("pacing_deviation", "5. RTP send interval - 20 ms (absolute)", "p99 <= 2 ms"),
)

# --api live: the same paths where GPT-Live has them (bench/latency_live.py says what each
# figure means); no speech_started and no flush, so 3 is timed from the model's output.
ROWS_LIVE = (
    ("rx_to_written", "1. RTP read -> session.input_audio.append written (total)", ""),
    ("hold", "1a. of which jitter-buffer hold (read -> released)", "by design"),
    ("release_to_written", "1b. of which released -> append written", "<= 1 ms"),
    ("sent_delta_to_packet", "2. reply's first delta written by the server -> its first RTP", ""),
    ("sent_delta_to_queued", "2a. of which written by the server -> in playout queue", "<= 2 ms"),
    ("delta_to_queued", "2a'. of 2a: read from the socket -> in playout queue", ""),
    ("queued_to_packet", "2b. of which 40 ms start delay + wait for the 20 ms frame", "by design"),
    ("steady_sent_delta_to_packet", "2s. later delta written -> its first RTP (steady)", ""),
    ("steady_delta_to_queued", "2s-a. of which read -> in playout queue", ""),
    ("steady_queued_to_packet", "2s-b. of which behind queued audio + frame wait", "by design"),
    (
        "sent_speech_to_last_bot",
        "3. model's last non-silent byte (server clock) -> last non-silent RTP",
        "<= 100 ms",
    ),
    ("speech_to_last_bot", "3'. the same byte, read clock -> last non-silent RTP", ""),
    ("rtp_socket_wait", "4a. RTP written by the caller -> read by the gateway", ""),
    ("event_socket_wait", "4b. server event written -> read by the gateway", ""),
    ("pacing_deviation", "5. RTP send interval - 20 ms (absolute)", "p99 <= 2 ms"),
)


def print_tables(results: list[dict[str, Any]], live: bool) -> None:
    print()
    print("| calls | metric | n | p50 ms | p99 ms | max ms | target (p99) |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        for key, label, target in ROWS_LIVE if live else ROWS:
            m = r[key]
            print(
                f"| {r['calls']} | {label} | {m['n']} | {m['p50_ms']} | {m['p99_ms']} | "
                f"{m['max_ms']} | {target} |"
            )
    print()
    after = "the model fell silent" if live else "speech_started"
    print(
        "| calls (answered) | gateway CPU % | server CPU % | callers CPU % | load avg (1 min) before/after "
        f"| CPU steal % | appended B/s (expected) | appends dropped | bot pkts after {after} (max) "
        f"| barge-ins not flushed{' (no flush in live)' if live else ''} | clock late p50/p99 ms | preempted /s | setup s "
        "| inbound late / concealed / reordered | jitter window ms (mean at end) | warnings |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['calls']} ({r['answered']}) | {r['cpu_pct']} | {r['server_cpu_pct']} | {r['callers_cpu_pct']} | "
            f"{r['load_before'][0]} / {r['load_after'][0]} | {r['steal_pct']} | "
            f"{r['append_bytes_per_s']} "
            f"({r['expected_bytes_per_s']}) | {r['appends_dropped']} | "
            f"{r['bot_packets_after_speech_max']} | {r['not_flushed']} | "
            f"{r['clock_late_p50_ms']:g} / {r['clock_late_p99_ms']:g} | {r['preempted_per_s']} | "
            f"{r['setup_s']} | "
            f"{r['inbound_late']} / {r['inbound_concealed']} / {r['inbound_reordered']} | "
            f"{r['window_ms']} | "
            f"{r['warnings'] or ''}{' problems: ' + str(r['problems']) if r['problems'] else ''} |"
        )
    print()
    print(
        "| calls (answered) | gateway CPU us per call per 20 ms | gateway RSS MiB "
        "| RSS KiB per call | playout trimmed B | tagged deltas never on the wire |"
    )
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['calls']} ({r['answered']}) | {r['cpu_us_per_call_per_20ms']} | "
            f"{r['rss_mib']} | {r['rss_kib_per_call']} | {r['playout_trimmed_bytes']} | "
            f"{r['unmatched_deltas']} |"
        )
