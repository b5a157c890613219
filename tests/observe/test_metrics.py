"""Metrics: counters move through the typed helpers, exposition parses, names are unique."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from gateway.observe.metrics import PREFIX, Metrics, status_class


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    return _samples(metrics).get((name, tuple(sorted(labels.items()))), 0.0)


def test_call_lifecycle_moves_gauge_and_counter() -> None:
    m = Metrics()
    m.call_started("support")
    m.call_started("support")
    assert _value(m, "srg_calls_active", route="support") == 2
    m.call_ended("support", "remote_bye", 12.5)
    assert _value(m, "srg_calls_active", route="support") == 1
    assert _value(m, "srg_calls_total", route="support", outcome="remote_bye") == 1
    assert _value(m, "srg_call_duration_seconds_count") == 1
    assert _value(m, "srg_call_duration_seconds_sum") == 12.5
    # A rejected call never became active: the gauge must not go negative.
    m.call_ended("support", "rejected", was_active=False)
    assert _value(m, "srg_calls_active", route="support") == 1
    assert _value(m, "srg_calls_total", route="support", outcome="rejected") == 1


def test_unknown_label_values_are_clamped_to_other() -> None:
    m = Metrics()
    m.call_started("r")
    m.call_ended("r", "cause from the wire \x00 !!", 1.0)
    m.sip_request("in", "FOOBAR")
    m.dtmf_digit("telepathy")
    m.barge_in("explode")
    assert _value(m, "srg_calls_total", route="r", outcome="other") == 1
    assert _value(m, "srg_sip_requests_total", direction="in", method="other") == 1
    assert _value(m, "srg_dtmf_digits_total", source="other") == 1
    assert _value(m, "srg_barge_ins_total", action="other") == 1


def test_histograms_land_in_buckets() -> None:
    m = Metrics()
    m.observe_setup(0.3)
    m.observe_realtime_connect(0.2)
    m.observe_response_latency(0.8)
    m.observe_pacer_lateness(0.004)
    m.observe_pacer_lateness(-0.001)  # early ticks count as 0, not as a negative sum
    assert _value(m, "srg_call_setup_seconds_bucket", le="0.25") == 0
    assert _value(m, "srg_call_setup_seconds_bucket", le="0.5") == 1
    assert _value(m, "srg_realtime_connect_seconds_count") == 1
    assert _value(m, "srg_response_latency_seconds_bucket", le="1.0") == 1
    assert _value(m, "srg_response_latency_seconds_bucket", le="0.75") == 0
    assert _value(m, "srg_pacer_lateness_seconds_count") == 2
    assert _value(m, "srg_pacer_lateness_seconds_sum") == 0.004


def test_media_tools_tokens_sip_counters() -> None:
    m = Metrics()
    m.dtmf_digit("rfc4733")
    m.dtmf_digit("rfc4733")
    m.barge_in("truncate")
    m.barge_in("delete")
    m.realtime_reconnect()
    m.tool_call("transfer_call", "ok")
    m.tool_call("lookup_order", "timeout")
    m.rtp_call_stats(
        packets_in=500, packets_out=480, lost=3, late=1, concealed_frames=4, jitter_s=0.004
    )
    m.rtp_call_stats(lost=-2)  # duplicates make RFC 3550 loss negative: ignored
    m.add_tokens({"input_audio_tokens": 120, "cached_tokens": 40, "total_tokens": 999})
    m.add_tokens({"output_audio": 300})
    m.registration_state("pbx", True)
    m.registration_state("trunk", False)
    m.sip_request("in", "invite")
    m.sip_response("out", 200)
    m.sip_response("out", 486)
    m.sip_parse_error()
    m.sip_parse_error(41)  # a scrape adds what arrived since the last one in one step
    m.sip_parse_error(0)
    v = lambda name, **labels: _value(m, name, **labels)  # noqa: E731
    assert v("srg_dtmf_digits_total", source="rfc4733") == 2
    assert v("srg_barge_ins_total", action="truncate") == 1
    assert v("srg_barge_ins_total", action="delete") == 1
    assert v("srg_realtime_reconnects_total") == 1
    assert v("srg_tool_calls_total", tool="transfer_call", result="ok") == 1
    assert v("srg_tool_calls_total", tool="lookup_order", result="timeout") == 1
    assert v("srg_rtp_packets_total", direction="in") == 500
    assert v("srg_rtp_packets_total", direction="out") == 480
    assert v("srg_rtp_packets_lost_total") == 3
    assert v("srg_rtp_packets_late_total") == 1
    assert v("srg_rtp_concealed_frames_total") == 4
    assert v("srg_rtp_jitter_seconds_count") == 1
    assert v("srg_realtime_tokens_total", kind="input_audio") == 120
    assert v("srg_realtime_tokens_total", kind="cached") == 40
    assert v("srg_realtime_tokens_total", kind="output_audio") == 300
    assert v("srg_realtime_tokens_total", kind="output_text") == 0  # pre-created
    assert v("srg_registration_up", registration="pbx") == 1
    assert v("srg_registration_up", registration="trunk") == 0
    assert v("srg_sip_requests_total", direction="in", method="INVITE") == 1
    assert v("srg_sip_responses_total", direction="out", status_class="2xx") == 1
    assert v("srg_sip_responses_total", direction="out", status_class="4xx") == 1
    assert v("srg_sip_parse_errors_total") == 42


def test_names_unique_prefixed_and_registries_independent() -> None:
    a, b = Metrics(), Metrics()  # two gateways in one process must not collide
    a.dtmf_digit("info")
    assert _value(b, "srg_dtmf_digits_total", source="info") == 0
    families = list(a.registry.collect())
    names = [f.name for f in families]
    assert len(names) == len(set(names))
    assert all(n.startswith(PREFIX) for n in names)
    assert len(names) >= 20
    for f in families:
        assert f.documentation, f.name
    assert "srg_calls_total" in a.sample_names()
    assert "srg_call_setup_seconds_bucket" in a.sample_names()


def test_status_class() -> None:
    assert status_class(100) == "1xx"
    assert status_class(603) == "6xx"
    assert status_class(42) == "other"
    assert status_class(700) == "other"


def test_metrics_doc_lists_every_metric() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()
    for family in Metrics().registry.collect():
        shown = family.name + ("_total" if family.type == "counter" else "")
        assert f"`{shown}`" in doc, shown


def test_pacer_lateness_is_read_from_the_clock_at_scrape_time() -> None:
    from gateway.media.pacer import LATENESS_BUCKETS, LatenessStats

    m = Metrics()
    bounds = [
        dict(labels)["le"]
        for (name, labels) in _samples(m)
        if name == "srg_pacer_lateness_seconds_bucket"
    ]
    assert bounds == [repr(b) for b in LATENESS_BUCKETS] + ["+Inf"]  # the clock's buckets
    stats = LatenessStats()
    m.read_pacer_from(lambda: stats)
    for lateness in [0.0001] * 900 + [0.003] * 99 + [0.7]:
        stats.observe(lateness)
    assert _value(m, "srg_pacer_lateness_seconds_count") == 1000
    assert _value(m, "srg_pacer_lateness_seconds_bucket", le="0.0005") == 900
    assert _value(m, "srg_pacer_lateness_seconds_bucket", le="0.005") == 999
    assert _value(m, "srg_pacer_lateness_seconds_bucket", le="0.5") == 999
    assert _value(m, "srg_pacer_lateness_seconds_bucket", le="+Inf") == 1000
    assert abs(_value(m, "srg_pacer_lateness_seconds_sum") - (0.09 + 0.297 + 0.7)) < 1e-9
    stats.observe(0.0001)  # later wakeups show at the next scrape, nothing to replay
    assert _value(m, "srg_pacer_lateness_seconds_count") == 1001


def test_the_clock_s_skipped_and_catch_up_frames_are_counted_at_scrape_time() -> None:
    """An overloaded process shows in these two before callers complain of gaps."""
    from gateway.media.pacer import LatenessStats

    m = Metrics()
    assert _value(m, "srg_pacer_skipped_frames_total") == 0
    stats = LatenessStats()
    m.read_pacer_from(lambda: stats)
    stats.skipped_frames += 7
    stats.catchup_frames += 3
    assert _value(m, "srg_pacer_skipped_frames_total") == 7
    assert _value(m, "srg_pacer_catchup_frames_total") == 3


def test_pacer_scrape_cost_does_not_grow_with_wakeups() -> None:
    """A scrape reads ten buckets: the same work after 10 or 10 million wakeups."""
    from gateway.media.pacer import LatenessStats

    m = Metrics()
    stats = LatenessStats()
    m.read_pacer_from(lambda: stats)
    stats.bucket_counts[1] = 10_000_000
    stats.wakeups = 10_000_000
    assert _value(m, "srg_pacer_lateness_seconds_count") == 10_000_000


def test_media_drops_are_counted_by_reason() -> None:
    m = Metrics()
    assert _value(m, "srg_rtp_dropped_packets_total", reason="foreign_source") == 0  # pre-created
    m.media_dropped(
        {"foreign_source": 150, "probation": 2, "rate": 0, "bogus": 3},
        {"input_rate": 16000, "playout_overflow": 0},
    )
    assert _value(m, "srg_rtp_dropped_packets_total", reason="foreign_source") == 150
    assert _value(m, "srg_rtp_dropped_packets_total", reason="probation") == 2
    assert _value(m, "srg_rtp_dropped_packets_total", reason="other") == 3
    assert _value(m, "srg_audio_dropped_bytes_total", reason="input_rate") == 16000


# -- issue 10: every end cause the code produces has a label of its own ----------------------

_ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def _produced_end_causes() -> set[str]:
    """Every cause the code can hand to `call_ended`: the end-cause enum
    (gateway/call/causes.py), which the call object, the machine's SendBye and the user
    agent's end reasons (`UA_CAUSES`) all use, and the crash-recovery record's cause."""
    from gateway.call.causes import UA_CAUSES, EndCause
    from gateway.observe.records import RESTART_CAUSE
    from sip.calls import END_REASONS

    causes: set[str] = {str(cause) for cause in EndCause} | {RESTART_CAUSE}
    causes |= {str(cause) for cause in UA_CAUSES.values()}
    # Every reason the user agent ends a call for has its cause (none falls to `error`).
    assert set(END_REASONS) <= set(UA_CAUSES), set(END_REASONS) - set(UA_CAUSES)
    return causes


def test_every_end_cause_the_code_produces_has_a_label() -> None:
    from gateway.call.causes import EndCause
    from gateway.observe.metrics import OUTCOMES, end_cause_label

    causes = _produced_end_causes()
    # One vocabulary: the metrics' outcomes are the end causes, spelled the same.
    assert {str(cause) for cause in EndCause} == OUTCOMES
    assert {"end_call", "no_answer", "max_duration", "rtp_timeout", "ack_timeout"} <= causes
    unlabelled = {c: end_cause_label(c) for c in causes if end_cause_label(c) == "other"}
    assert not unlabelled, unlabelled
    # The machine's own BYEs carry an end cause, never free text (gateway/call/machine.py).
    source = (_ROOT / "gateway/call/machine.py").read_text()
    assert 'SendBye("' not in source and 'SendBye(f"' not in source
    # Each label is documented in docs/metrics.md.
    doc = (_ROOT / "docs/metrics.md").read_text()
    for label in OUTCOMES:
        assert f"`{label}`" in doc, label
    m = Metrics()
    m.call_ended("r", "end_call", was_active=False)
    m.call_ended("r", "no_answer", was_active=False)
    m.call_ended("r", EndCause.RTP_TIMEOUT, was_active=False)
    assert _value(m, "srg_calls_total", route="r", outcome="end_call") == 1
    assert _value(m, "srg_calls_total", route="r", outcome="no_answer") == 1
    assert _value(m, "srg_calls_total", route="r", outcome="rtp_timeout") == 1
    assert _value(m, "srg_calls_total", route="r", outcome="other") == 0


def test_process_gauges_follow_descriptors_tasks_and_memory() -> None:
    """srg_process_open_fds / srg_asyncio_tasks / srg_process_resident_memory_bytes are read at
    scrape time: a descriptor opened, a task started and memory touched show at the next scrape,
    and go back when released (what the soak compares before and after its calls)."""
    import asyncio
    import os

    m = Metrics()
    fds0 = _value(m, "srg_process_open_fds")
    assert fds0 == len(os.listdir("/proc/self/fd")) - 1
    opened = [os.open(os.devnull, os.O_RDONLY) for _ in range(5)]
    try:
        assert _value(m, "srg_process_open_fds") == fds0 + 5
    finally:
        for fd in opened:
            os.close(fd)
    assert _value(m, "srg_process_open_fds") == fds0
    assert _value(m, "srg_asyncio_tasks") == 0  # scraped outside an event loop

    async def scrape_with_tasks() -> tuple[float, float]:
        base = _value(m, "srg_asyncio_tasks")  # this coroutine's own task
        gate = asyncio.Event()
        tasks = [asyncio.create_task(gate.wait()) for _ in range(3)]
        busy = _value(m, "srg_asyncio_tasks")
        gate.set()
        await asyncio.gather(*tasks)
        assert _value(m, "srg_asyncio_tasks") == base
        return base, busy

    base, busy = asyncio.run(scrape_with_tasks())
    assert (base, busy) == (1, 4)

    rss0 = _value(m, "srg_process_resident_memory_bytes")
    ballast = b"\x01" * (64 << 20)  # 64 MiB written, so resident (not calloc's lazy zeros)
    assert _value(m, "srg_process_resident_memory_bytes") >= rss0 + (60 << 20)
    assert len(ballast) == 64 << 20


def test_counts_per_voice_event_accumulate_per_registry() -> None:
    """The children of bounded labels are kept once made (issue 14: labels() per event cost a
    lock and a few µs): every count lands on its series, each Metrics keeps its own, and a
    series appears only once counted, as before."""
    a, b = Metrics(), Metrics()
    for _ in range(3):
        a.barge_in("truncate")
        a.realtime_response("cancelled")
        a.idle_event("server")
        a.add_tokens({"output_audio_tokens": 5, "total_tokens": 99})
    a.barge_in("no such action")
    b.barge_in("truncate")
    assert _value(a, "srg_barge_ins_total", action="truncate") == 3
    assert _value(a, "srg_barge_ins_total", action="other") == 1
    assert _value(a, "srg_realtime_responses_total", status="cancelled") == 3
    assert _value(a, "srg_idle_events_total", source="server") == 3
    assert _value(a, "srg_realtime_tokens_total", kind="output_audio") == 15
    assert _value(b, "srg_barge_ins_total", action="truncate") == 1
    assert ("srg_barge_ins_total", (("action", "delete"),)) not in _samples(a)
