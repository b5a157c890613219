"""Prometheus metrics of one gateway, served by the control API at `GET /metrics`.

Every metric lives in a `CollectorRegistry` owned by the `Metrics` object, not in
prometheus_client's global registry: tests and several gateways in one process would otherwise
collide on "Duplicated timeseries" errors. Callers use the typed helpers (`call_started(route)`,
`observe_setup(seconds)`, ...) and never spell a label value themselves.

Label values are clamped to small known sets (`other` for anything else) because every distinct
value is a new time series kept forever: a SIP method or hangup cause taken verbatim from the wire
would let one misbehaving peer blow up Prometheus' memory. Routes, registrations and tool names come
from the configuration, so they are bounded by it. docs/metrics.md lists every metric.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from gateway.media.pacer import LATENESS_BUCKETS, LatenessStats

PREFIX = "srg_"

# The end causes of gateway/call/causes.py `EndCause`, spelled here because observe sits below
# the call layer (tests/observe/test_metrics.py checks both sets are the same).
OUTCOMES = frozenset(
    {
        "remote_bye",
        "local_bye",
        "max_duration",
        "rtp_timeout",
        "shutdown",
        "cancelled",
        "ack_timeout",
        "session_expired",
        "rejected",
        "bad_answer",
        "realtime_failed",
        "transferred",
        "error",
        # Realtime reconnect budget spent (BYE, Reason cause=503).
        "voice_session_unavailable",
        # Live when the process died; recorded from its in-progress marker at the next start.
        "process_restart",
        # The model called the end_call tool (BYE after its last words).
        "end_call",
        # An outbound call (POST /calls) nobody answered.
        "no_answer",
        # The caller pressed a digit configured as hangup (calls.digit_actions).
        "dtmf_hangup",
        # The bot's last words did not finish playing within calls.drain_timeout_s.
        "drain_timeout",
        # The inactivity watchdog's polite hang-up (calls.idle_prompt_s, issue 10).
        "idle_caller",
        # GPT-Live ended the session itself (issue 12): session.closed{content} (its safety
        # filter) / {remote_hangup}; the call ends instead of reconnecting.
        "voice_content_filter",
        "voice_ended",
    }
)
DTMF_SOURCES = frozenset({"rfc4733", "info", "inband"})
# What the gateway did with the bot's item when the caller barged in: `truncate` the played
# part (conversation.item.truncate), `delete` an item nothing of which was heard, or `none`
# when the bot had already finished speaking.
BARGE_IN_ACTIONS = frozenset({"truncate", "delete", "none"})
TOKEN_KINDS = ("input_text", "input_audio", "output_text", "output_audio", "cached")
# srg_rtp_dropped_packets_total reasons (StreamStats names, gateway/media/stats.py).
RTP_DROP_REASONS = (
    "foreign_source",
    "probation",
    "rate",
    "rtcp_foreign",
    "jitter_overflow",
    "srtp_auth",  # SRTP/SRTCP that failed authentication (forged, damaged, or plain RTP)
    "srtp_replay",  # SRTP/SRTCP replayed (RFC 3711 3.3.2)
    "srtp_malformed",
)
AUDIO_DROP_REASONS = ("input_rate", "playout_overflow")
SIP_METHODS = frozenset(
    {
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "INFO",
        "UPDATE",
        "REFER",
        "NOTIFY",
        "SUBSCRIBE",
        "PRACK",
        "MESSAGE",
    }
)
DIRECTIONS = frozenset({"in", "out"})
TOOL_RESULTS = frozenset({"ok", "error", "timeout", "cancelled", "unknown_tool"})
RESPONSE_STATUSES = ("completed", "cancelled", "failed", "incomplete")
IDLE_SOURCES = ("server", "prompt", "hangup")
OTHER = "other"

# Seconds. Call setup (INVITE -> 200 OK sent) is dominated by the Realtime connect, so both
# share buckets reaching a few seconds; response latency is what callers feel as "the bot is slow".
_SETUP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
_LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
_DURATION_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
# RFC 3550 interarrival jitter of a call at hangup; 20 ms frames make 0.02 the interesting edge.
_JITTER_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2)
# How late the shared media clock fired a 20 ms tick: above ~10 ms the far end's jitter buffer
# starts to stretch or conceal.


class _PacerLatency:
    """`srg_pacer_lateness_seconds`, read from the media clock's own histogram at scrape time.

    The clock counts about 1000 wakeups a second (20 slots x 50 Hz) whatever the call count;
    replaying them into a prometheus_client Histogram one `observe()` at a time cost 37 ms of
    event-loop time per 15 s scrape (measured), a stall every caller would hear. This is the
    same histogram with no per-wakeup work: the clock's buckets (`LATENESS_BUCKETS`), exact sum.
    Wakeups observed by hand (`observe`) go into a `LatenessStats` of their own and are added."""

    NAME = PREFIX + "pacer_lateness_seconds"
    DOC = "How late the shared media clock ran each 20 ms tick."

    def __init__(self) -> None:
        self.source: Callable[[], LatenessStats | None] = lambda: None
        self.by_hand = LatenessStats()

    # The late-tick policy's two outcomes (pacer.py): per-call frames sent at once because the
    # wakeup came late, and per-call frames never sent because it came more than `max_catchup`
    # frames late (the caller hears a gap). Either rising means the process is overloaded.
    FRAMES: ClassVar[dict[str, tuple[str, str]]] = {
        "pacer_catchup_frames": (
            "catchup_frames",
            "Per-call frames sent late, in a catch-up burst.",
        ),
        "pacer_skipped_frames": (
            "skipped_frames",
            "Per-call frames skipped: the clock was too late.",
        ),
    }

    def describe(self) -> Iterator[HistogramMetricFamily | CounterMetricFamily]:
        yield HistogramMetricFamily(self.NAME, self.DOC)
        for name, (_, doc) in self.FRAMES.items():
            yield CounterMetricFamily(PREFIX + name, doc)

    def collect(self) -> Iterator[HistogramMetricFamily | CounterMetricFamily]:
        counts = list(self.by_hand.bucket_counts)
        total_sum = self.by_hand.sum_lateness
        stats = self.source()
        if stats is not None:
            counts = [a + b for a, b in zip(counts, stats.bucket_counts, strict=True)]
            total_sum += stats.sum_lateness
        cumulative, seen = [], 0
        for bound, count in zip((*LATENESS_BUCKETS, float("inf")), counts, strict=True):
            seen += count
            cumulative.append(("+Inf" if bound == float("inf") else repr(bound), seen))
        yield HistogramMetricFamily(self.NAME, self.DOC, buckets=cumulative, sum_value=total_sum)
        for name, (attribute, doc) in self.FRAMES.items():
            value = getattr(self.by_hand, attribute) + (getattr(stats, attribute) if stats else 0)
            yield CounterMetricFamily(PREFIX + name, doc, value=value)

    def observe(self, seconds: float) -> None:
        self.by_hand.observe(seconds)


# -- SIP resource limits (issue 9) ----------------------------------------------------------------
# Read at scrape time from the plain int counters of sip.transport and sip.useragent (a flood
# must not turn into a loop of inc() calls on the event loop). `source()` returns a mapping of
# the keys below; missing keys read as 0.
SIP_LIMIT_GAUGES = {
    "sip_server_transactions": ("server_transactions", "SIP server transactions held now."),
    "sip_tcp_connections": ("tcp_connections", "SIP TCP connections open now."),
}
SIP_LIMIT_COUNTERS = {
    "sip_requests_dropped": (
        "Received SIP requests dropped without an answer, by reason.",
        {"reason": {"transaction_cap": "transactions_dropped"}},
    ),
    "sip_transactions_evicted": (
        "Finished server transactions dropped to make room for a new request (total cap).",
        {"": {"": "transactions_evicted"}},
    ),
    "sip_options_stateless": (
        "Out-of-dialog OPTIONS answered without a server transaction.",
        {"": {"": "options_stateless"}},
    ),
    "sip_tcp_connections_refused": (
        "Inbound SIP TCP connections closed at accept, by the cap they hit.",
        {"reason": {"total_cap": "tcp_refused_total_cap", "source_cap": "tcp_refused_source_cap"}},
    ),
    "sip_tcp_connections_closed": (
        "SIP TCP connections the gateway closed, by reason (deadline = slowloris).",
        {
            "reason": {
                "deadline": "tcp_closed_deadline",
                "oversize": "tcp_closed_oversize",
                "framing": "tcp_closed_framing",
                "idle": "tcp_closed_idle",
            }
        },
    ),
    "sip_tcp_accept_errors": (
        "accept() failures on the SIP TCP listener (EMFILE...); accepting pauses 1 s.",
        {"": {"": "tcp_accept_errors"}},
    ),
    "sip_udp_dropped": (
        "SIP UDP datagrams dropped unread, by reason.",
        {"reason": {"oversize": "udp_oversize"}},
    ),
}


class _SipLimits:
    def __init__(self) -> None:
        self.source: Callable[[], Mapping[str, int]] = dict

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        values = self.source()
        for name, (key, doc) in SIP_LIMIT_GAUGES.items():
            yield GaugeMetricFamily(PREFIX + name, doc, value=values.get(key, 0))
        for name, (doc, by_label) in SIP_LIMIT_COUNTERS.items():
            ((label, keys),) = by_label.items()
            family = CounterMetricFamily(PREFIX + name, doc, labels=[label] if label else [])
            for label_value, key in keys.items():
                family.add_metric([label_value] if label else [], values.get(key, 0))
            yield family


# -- the process (issue 14: the soak's RSS, descriptor and task bounds) -----------------------------
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes(statm: str = "/proc/self/statm") -> int | None:
    """Resident set size now (proc(5) statm, second field, in pages); None off Linux."""
    try:
        with open(statm, "rb") as f:
            return int(f.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return None


def open_fds(fd_dir: str = "/proc/self/fd") -> int | None:
    """Open file descriptors now (the entries of /proc/self/fd, less the one listing it)."""
    try:
        return max(len(os.listdir(fd_dir)) - 1, 0)
    except OSError:
        return None


def running_tasks() -> int:
    """asyncio tasks not done on the running loop (0 when scraped outside one)."""
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:
        return 0


class _ProcessGauges:
    """RSS, descriptors and asyncio tasks of the gateway process, read at scrape time only.

    A leak per call shows as growth of these between two idle moments (tests/soak/): a call
    holds 3 descriptors (RTP, RTCP, WebSocket) and a handful of tasks while it lasts, nothing
    after it. Off Linux the two /proc gauges are left out rather than reported as 0."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rss = resident_bytes()
        if rss is not None:
            yield GaugeMetricFamily(
                PREFIX + "process_resident_memory_bytes",
                "Resident memory of the process.",
                value=rss,
            )
        fds = open_fds()
        if fds is not None:
            yield GaugeMetricFamily(
                PREFIX + "process_open_fds", "Open file descriptors of the process.", value=fds
            )
        yield GaugeMetricFamily(
            PREFIX + "asyncio_tasks",
            "asyncio tasks not done on the event loop.",
            value=running_tasks(),
        )


def _bounded(value: str, allowed: Iterable[str]) -> str:
    return value if value in allowed else OTHER


def end_cause_label(cause: str) -> str:
    """The `outcome` label of an end cause (an EndCause value); `other` for anything else."""
    return cause if cause in OUTCOMES else OTHER


def sip_first_line(data: bytes) -> tuple[str | None, int | None]:
    """(method, None) for a request, (None, status) for a response, from the first line only:
    cheap enough for every message, and the metrics need nothing more."""
    head = data[:64].lstrip(b"\r\n")
    if head.startswith(b"SIP/2.0 "):
        code = head[8:11]
        return None, int(code) if code.isdigit() else None
    space = head.find(b" ")
    return (head[:space].decode("ascii", "replace") if space > 0 else None), None


def status_class(status: int) -> str:
    """`200` -> `"2xx"`; anything outside 100-699 -> `"other"`."""
    if 100 <= status <= 699:
        return f"{status // 100}xx"
    return OTHER


class Metrics:
    """Every metric of one gateway, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        p = PREFIX
        self.calls_active = Gauge(p + "calls_active", "Calls in progress.", ["route"], registry=r)
        self.calls = Counter(
            p + "calls",
            "Calls ended, by route and outcome (the call.ended cause).",
            ["route", "outcome"],
            registry=r,
        )
        self.call_duration = Histogram(
            p + "call_duration_seconds",
            "Length of answered calls, answer to hangup.",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.call_setup = Histogram(
            p + "call_setup_seconds",
            "INVITE received to 200 OK sent.",
            buckets=_SETUP_BUCKETS,
            registry=r,
        )
        self.realtime_connect = Histogram(
            p + "realtime_connect_seconds",
            "WebSocket connect to session.updated from the Realtime API.",
            buckets=_SETUP_BUCKETS,
            registry=r,
        )
        self.response_latency = Histogram(
            p + "response_latency_seconds",
            "Caller stopped speaking (speech_stopped) to the first bot audio sent as RTP.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.barge_ins = Counter(
            p + "barge_ins",
            "Caller spoke over the bot, by what was done with the bot's item.",
            ["action"],
            registry=r,
        )
        self.dtmf_digits = Counter(
            p + "dtmf_digits", "DTMF digits received, by source.", ["source"], registry=r
        )
        self.dtmf_dropped = Counter(
            p + "dtmf_dropped",
            "DTMF digits dropped over the per-call rate (calls.max_dtmf_per_s), by source.",
            ["source"],
            registry=r,
        )
        self.rtp_packets = Counter(
            p + "rtp_packets",
            "RTP packets by direction (in = from the caller).",
            ["direction"],
            registry=r,
        )
        self.rtp_lost = Counter(
            p + "rtp_packets_lost", "Inbound RTP packets never received.", registry=r
        )
        self.rtp_late = Counter(
            p + "rtp_packets_late",
            "Inbound RTP packets that arrived after their playout point and were dropped.",
            registry=r,
        )
        self.rtp_concealed = Counter(
            p + "rtp_concealed_frames",
            "20 ms frames filled with silence because the caller's packet was missing.",
            registry=r,
        )
        self.rtp_jitter = Histogram(
            p + "rtp_jitter_seconds",
            "Inbound interarrival jitter (RFC 3550 6.4.1) of each call at hangup.",
            buckets=_JITTER_BUCKETS,
            registry=r,
        )
        self.pacer_lateness = _PacerLatency()
        r.register(self.pacer_lateness)
        self.realtime_reconnects = Counter(
            p + "realtime_reconnects", "Realtime WebSocket reconnects during calls.", registry=r
        )
        self.tool_calls = Counter(
            p + "tool_calls", "Tool calls by tool name and result.", ["tool", "result"], registry=r
        )
        self.tokens = Counter(
            p + "realtime_tokens",
            "Realtime API tokens by kind (cached = input tokens served from cache).",
            ["kind"],
            registry=r,
        )
        self.voice_seconds = Counter(
            p + "voice_session_seconds",
            "Voice session seconds the backend reported (GPT-Live session.usage.updated: "
            "billed per second, silence included).",
            registry=r,
        )
        self.registration_up = Gauge(
            p + "registration_up",
            "1 while a registration is confirmed by its registrar, else 0.",
            ["registration"],
            registry=r,
        )
        self.sip_requests = Counter(
            p + "sip_requests",
            "SIP requests by direction (in = received) and method.",
            ["direction", "method"],
            registry=r,
        )
        self.sip_responses = Counter(
            p + "sip_responses",
            "SIP responses by direction (in = received) and status class.",
            ["direction", "status_class"],
            registry=r,
        )
        self.sip_parse_errors = Counter(
            p + "sip_parse_errors", "Received SIP messages that could not be parsed.", registry=r
        )
        self.sip_limits = _SipLimits()
        r.register(self.sip_limits)
        r.register(_ProcessGauges())
        # Pre-created so dashboards show 0 instead of "no data" before the first call; kept,
        # since `labels()` costs a lock and a few µs per call and usage comes with every
        # response (bench/event_cost.py). Children of the other bounded labels counted per
        # voice event are kept once made (`_child`).
        self._tokens_by_kind = {kind: self.tokens.labels(kind=kind) for kind in TOKEN_KINDS}
        self._children: dict[tuple[str, str], Any] = {}
        self._init_media_safety(p, r)

    # -- calls -------------------------------------------------------------------------------

    def call_started(self, route: str) -> None:
        self.calls_active.labels(route=route).inc()

    def call_ended(
        self, route: str, outcome: str, duration_s: float | None = None, *, was_active: bool = True
    ) -> None:
        """Count the call; `was_active=False` for calls rejected before `call_started`."""
        if was_active:
            self.calls_active.labels(route=route).dec()
        self.calls.labels(route=route, outcome=end_cause_label(outcome)).inc()
        if duration_s is not None and duration_s >= 0:
            self.call_duration.observe(duration_s)

    def observe_setup(self, seconds: float) -> None:
        self.call_setup.observe(seconds)

    def observe_realtime_connect(self, seconds: float) -> None:
        self.realtime_connect.observe(seconds)

    def observe_response_latency(self, seconds: float) -> None:
        self.response_latency.observe(seconds)

    def _child(self, metric: Any, label: str, value: str) -> Any:
        """`metric.labels(label=value)`, made once: `value` is already bounded (`_bounded`)."""
        key = (metric._name, value)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(**{label: value})
        return child

    def barge_in(self, action: str) -> None:
        self._child(self.barge_ins, "action", _bounded(action, BARGE_IN_ACTIONS)).inc()

    def dtmf_digit(self, source: str) -> None:
        self.dtmf_digits.labels(source=_bounded(source, DTMF_SOURCES)).inc()

    def dtmf_dropped_digit(self, source: str) -> None:
        self.dtmf_dropped.labels(source=_bounded(source, DTMF_SOURCES)).inc()

    def add_voice_seconds(self, seconds: float) -> None:
        if seconds > 0:
            self.voice_seconds.inc(seconds)

    def realtime_reconnect(self) -> None:
        self.realtime_reconnects.inc()

    def tool_call(self, tool: str, result: str) -> None:
        self.tool_calls.labels(tool=tool, result=_bounded(result, TOOL_RESULTS)).inc()

    def add_tokens(self, usage: Mapping[str, int]) -> None:
        """Add token counts keyed by kind (`input_audio`, ...; unknown kinds are ignored).

        Also accepts the field names of `gateway.realtime.events.Usage`
        (`input_audio_tokens`, `cached_tokens`, ...), so `dataclasses.asdict(usage)` works.
        """
        children = self._tokens_by_kind
        for key, count in usage.items():
            child = children.get(key.removesuffix("_tokens"))
            if child is not None and isinstance(count, int) and count > 0:
                child.inc(count)

    # -- media -------------------------------------------------------------------------------

    def rtp_call_stats(
        self,
        *,
        packets_in: int = 0,
        packets_out: int = 0,
        lost: int = 0,
        late: int = 0,
        concealed_frames: int = 0,
        jitter_s: float | None = None,
    ) -> None:
        """Add one call's RTP counters, once at hangup (never per packet: hot path)."""
        if packets_in > 0:
            self.rtp_packets.labels(direction="in").inc(packets_in)
        if packets_out > 0:
            self.rtp_packets.labels(direction="out").inc(packets_out)
        # RFC 3550 cumulative loss can go negative with duplicates; counters only go up.
        if lost > 0:
            self.rtp_lost.inc(lost)
        if late > 0:
            self.rtp_late.inc(late)
        if concealed_frames > 0:
            self.rtp_concealed.inc(concealed_frames)
        if jitter_s is not None and jitter_s >= 0:
            self.rtp_jitter.observe(jitter_s)

    def _init_media_safety(self, p: str, r: CollectorRegistry) -> None:
        # Issue 9 (strict media): what the gateway refused, so an attack is visible.
        self.rtp_dropped = Counter(
            p + "rtp_dropped_packets",
            "Inbound RTP/RTCP packets dropped for safety, by reason.",
            ["reason"],
            registry=r,
        )
        self.audio_dropped = Counter(
            p + "audio_dropped_bytes",
            "G.711 audio bytes dropped by a bound: input_rate (caller audio beyond real time), "
            "playout_overflow (bot audio beyond media.playout_max_s).",
            ["reason"],
            registry=r,
        )
        for reason in RTP_DROP_REASONS:
            self.rtp_dropped.labels(reason=reason)
        for reason in AUDIO_DROP_REASONS:
            self.audio_dropped.labels(reason=reason)
        # Issue 10: how Realtime responses ended, and idle callers.
        self.realtime_responses = Counter(
            p + "realtime_responses",
            "Realtime responses by response.done status (completed, cancelled, failed, "
            "incomplete).",
            ["status"],
            registry=r,
        )
        self.idle_events = Counter(
            p + "idle_events",
            "Idle callers: server (input_audio_buffer.timeout_triggered), prompt (the gateway's "
            "own idle prompt), hangup (the call ended after unanswered prompts).",
            ["source"],
            registry=r,
        )
        for status in RESPONSE_STATUSES:
            self.realtime_responses.labels(status=status)
        for source in IDLE_SOURCES:
            self.idle_events.labels(source=source)

    def media_dropped(self, rtp: Mapping[str, int], audio: Mapping[str, int]) -> None:
        """One call's drops, once at hangup: RTP packets and audio bytes by reason."""
        for reason, count in rtp.items():
            if count > 0:
                self.rtp_dropped.labels(reason=_bounded(reason, RTP_DROP_REASONS)).inc(count)
        for reason, count in audio.items():
            if count > 0:
                self.audio_dropped.labels(reason=_bounded(reason, AUDIO_DROP_REASONS)).inc(count)

    def realtime_response(self, status: str) -> None:
        self._child(self.realtime_responses, "status", _bounded(status, RESPONSE_STATUSES)).inc()

    def idle_event(self, source: str) -> None:
        self._child(self.idle_events, "source", _bounded(source, IDLE_SOURCES)).inc()

    def observe_pacer_lateness(self, seconds: float) -> None:
        """One wakeup by hand (tests, a clock of another kind); the gateway's own clock is
        read at scrape time instead (`read_pacer_from`)."""
        self.pacer_lateness.observe(seconds)

    def read_pacer_from(self, source: Callable[[], LatenessStats | None]) -> None:
        """Report the media clock's lateness histogram (`MediaClock.stats`), read at each
        scrape."""
        self.pacer_lateness.source = source

    # -- SIP ---------------------------------------------------------------------------------

    def registration_state(self, registration: str, registered: bool) -> None:
        self.registration_up.labels(registration=registration).set(1 if registered else 0)

    def count_sip_message(self, direction: str, data: bytes) -> None:
        """The transport's trace hook: every SIP message sent or received, by its first line."""
        method, status = sip_first_line(data)
        if method is not None:
            self.sip_request(direction, method)
        elif status is not None:
            self.sip_response(direction, status)

    def sip_request(self, direction: str, method: str) -> None:
        self.sip_requests.labels(
            direction=_bounded(direction, DIRECTIONS), method=_bounded(method.upper(), SIP_METHODS)
        ).inc()

    def sip_response(self, direction: str, status: int) -> None:
        self.sip_responses.labels(
            direction=_bounded(direction, DIRECTIONS), status_class=status_class(status)
        ).inc()

    def sip_parse_error(self, count: int = 1) -> None:
        if count > 0:
            self.sip_parse_errors.inc(count)

    def read_sip_limits_from(self, source: Callable[[], Mapping[str, int]]) -> None:
        """The SIP resource-limit counters and gauges (SIP_LIMIT_*), read at each scrape."""
        self.sip_limits.source = source

    # -- exposition --------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """Body and Content-Type for `GET /metrics` (Prometheus text format 0.0.4)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def sample_names(self) -> set[str]:
        """Every series name this registry can expose (`srg_calls_total`, `..._bucket`, ...)."""
        names: set[str] = set()
        for family in self.registry.collect():
            names.add(family.name)
            if family.type == "counter":
                names.update({family.name + "_total", family.name + "_created"})
            elif family.type == "histogram":
                names.update(family.name + s for s in ("_bucket", "_sum", "_count", "_created"))
            names.update(sample.name for sample in family.samples)
        return names
