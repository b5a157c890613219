/* gateway.media._jitter: the inbound jitter buffer of gateway/media/jitter.py in C (issue 14).
 *
 * The per-packet path (push, pop_ready) is the largest piece of the inbound RTP callback, so it is
 * compiled here, the way websockets ships its C speedups: an optional extension, the pure-Python
 * class (jitter.PyJitterBuffer) kept and used wherever this module is not built, and both tested
 * against each other (tests/media/test_jitter_parity.py) for identical frames, statistics and
 * properties on the same input.
 *
 * This file mirrors jitter.py function by function; read the behaviour there (module docstring).
 * Exactness rules that keep the two identical:
 * - The same floating-point operations in the same order, on doubles (Python floats). Python's
 *   int / int true division equals (double)a / (double)b while |a|, |b| < 2**53; the build uses
 *   -ffp-contract=off so no fused multiply-add changes a rounding.
 * - Python's min(a, b) keeps a unless b < a, max(a, b) keeps a unless b > a: written so here,
 *   which matters for NaN. A comparison is never replaced by its negation (NaN).
 * - Extended sequence numbers and timestamps are int64 (Python's are unbounded). They cannot
 *   overflow: the packet's numbers are taken only within +-2**48 (the wire gives 16/32 bits), an
 *   extended sequence number moves by at most MAX_DROPOUT per packet and an extended timestamp
 *   by less than 2**31 per packet (the 32-bit difference to the reference), and push raises
 *   OverflowError if an extended timestamp ever leaves +-2**53 (where int-to-double comparisons
 *   would stop being exact): over 4 million packets each jumping 2**31 samples forward, which a
 *   jump over max_gap (re-anchored at 0) prevents unless max_gap_ms is set beyond 268 million.
 *
 * Deliberate differences from the pure class, all on input only in-process code can construct
 * (decode_rtp yields bytes payloads and 16/32-bit numbers): a payload that is not exactly
 * `bytes`, a number that is not an int, or an arrival that is neither float nor int is a
 * TypeError; numbers beyond +-2**48 are an OverflowError. The pure class duck-types them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <math.h>

#define RECENT_SEQS 512 /* jitter.py _RECENT_SEQS, a power of two */
#define MAX_DROPOUT 3000 /* stats.py */
#define MAX_MISORDER 100
#define DECAY_PER_FRAME 0.0005
#define NO_SEQ INT64_MIN
#define NUMBER_LIMIT ((int64_t)1 << 48)
#define EXT_LIMIT ((int64_t)1 << 53)
#define SIZE_LIMIT ((int64_t)1 << 40) /* max_gap/max_packet beyond this act like infinity */

/* Defaults: jitter.py DEFAULT_* (tests/media/test_jitter_parity.py compares the defaults). */
#define DEFAULT_MIN_DELAY_MS 20.0
#define DEFAULT_MAX_DELAY_MS 200.0
#define DEFAULT_JITTER_FACTOR 4.0
#define DEFAULT_MAX_GAP_MS 1000.0
#define DEFAULT_MAX_PACKET_MS 120.0
#define DEFAULT_MAX_PACKETS 256

enum {
    ST_PUSHED,
    ST_RELEASED_FRAMES,
    ST_CONCEALED_FRAMES,
    ST_CONCEALED_SAMPLES,
    ST_DUPLICATES,
    ST_LATE,
    ST_REORDERED,
    ST_INVALID,
    ST_RESYNCS,
    ST_OVERFLOW,
    ST_SSRC_CHANGES,
    ST_UNDERRUNS,
    ST_COUNT /* the fields of jitter.JitterStats, in order */
};

/* Set by _bind() from jitter.py: Frame, JitterStats and g711.silence_byte. */
static PyTypeObject *frame_type = NULL;
static PyObject *stats_type = NULL;
static PyObject *silence_byte_func = NULL;

static PyObject *str_sequence_number, *str_timestamp, *str_ssrc, *str_payload;

typedef struct {
    int64_t ts; /* extended timestamp */
    PyObject *payload; /* bytes, owned */
    Py_ssize_t size;
} Entry;

typedef struct {
    int64_t seq, ts, ssrc;
    PyObject *payload; /* new reference */
    Py_ssize_t size;
} Packet;

typedef struct {
    PyObject_HEAD
    int64_t max_packets;
    unsigned char silence;
    int64_t rate;
    double min_delay, max_delay, factor;
    int64_t max_gap, max_packet;
    double delay, reorder_need, floor_, target;
    /* InterarrivalJitter (stats.py), RFC 3550 A.8 */
    int has_transit;
    double transit, jitter;
    /* the buffer: entries sorted by timestamp in buf[start, start + count) */
    Entry *buf;
    Py_ssize_t start, count, cap;
    PyObject *ready; /* list of Frame */
    int64_t media_time, frame_samples;
    int has_ssrc, has_previous_ssrc;
    int64_t ssrc, previous_ssrc;
    PyObject *probe; /* RtpPacket or NULL */
    double probe_arrival;
    int64_t highest_seq, highest_seq_raw, ts_ref, ts_ref_raw, ts_end;
    double base;
    int has_next_ts;
    int64_t next_ts;
    int underrun;
    int64_t stats[ST_COUNT];
    int64_t recent[RECENT_SEQS];
} JitterBuffer;

/* -- conversions ------------------------------------------------------------------------------ */

static int
as_double(PyObject *obj, const char *name, double *out)
{
    if (PyFloat_Check(obj)) {
        *out = PyFloat_AS_DOUBLE(obj);
        return 0;
    }
    if (PyLong_Check(obj)) {
        double value = PyLong_AsDouble(obj); /* OverflowError like Python's int + float */
        if (value == -1.0 && PyErr_Occurred())
            return -1;
        *out = value;
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "%s must be a float or int, not %.100s", name,
                 Py_TYPE(obj)->tp_name);
    return -1;
}

static int
as_number(PyObject *obj, const char *name, int64_t *out)
{
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "RTP %s must be an int, not %.100s", name,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long value = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (value == -1 && PyErr_Occurred())
        return -1;
    if (overflow || value > NUMBER_LIMIT || value < -NUMBER_LIMIT) {
        PyErr_Format(PyExc_OverflowError, "RTP %s out of range", name);
        return -1;
    }
    *out = (int64_t)value;
    return 0;
}

static int
get_number(PyObject *packet, PyObject *attr, const char *name, int64_t *out)
{
    PyObject *value = PyObject_GetAttr(packet, attr);
    if (value == NULL)
        return -1;
    int rc = as_number(value, name, out);
    Py_DECREF(value);
    return rc;
}

/* Read the four fields jitter.py reads; on success p->payload is a new reference. */
static int
read_packet(PyObject *packet, Packet *p)
{
    if (get_number(packet, str_sequence_number, "sequence_number", &p->seq) < 0 ||
        get_number(packet, str_timestamp, "timestamp", &p->ts) < 0 ||
        get_number(packet, str_ssrc, "ssrc", &p->ssrc) < 0)
        return -1;
    PyObject *payload = PyObject_GetAttr(packet, str_payload);
    if (payload == NULL)
        return -1;
    if (!PyBytes_CheckExact(payload)) {
        PyErr_Format(PyExc_TypeError, "RTP payload must be bytes, not %.100s",
                     Py_TYPE(payload)->tp_name);
        Py_DECREF(payload);
        return -1;
    }
    p->payload = payload;
    p->size = PyBytes_GET_SIZE(payload);
    return 0;
}

static int64_t
clamp_size(double value)
{
    if (value > (double)SIZE_LIMIT)
        return SIZE_LIMIT;
    if (value < -(double)SIZE_LIMIT)
        return -SIZE_LIMIT;
    return (int64_t)value; /* truncation towards zero, as int() */
}

/* int(value) as Python does it: NaN -> ValueError, inf -> OverflowError. */
static int
py_int(double value, int64_t *out)
{
    if (isnan(value)) {
        PyErr_SetString(PyExc_ValueError, "cannot convert float NaN to integer");
        return -1;
    }
    if (isinf(value)) {
        PyErr_SetString(PyExc_OverflowError, "cannot convert float infinity to integer");
        return -1;
    }
    *out = clamp_size(value);
    return 0;
}

static int
lookup_silence(PyObject *codec, unsigned char *out)
{
    if (silence_byte_func == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "gateway.media._jitter is not bound (import jitter.py)");
        return -1;
    }
    PyObject *value = PyObject_CallOneArg(silence_byte_func, codec);
    if (value == NULL)
        return -1;
    long byte = PyLong_AsLong(value);
    Py_DECREF(value);
    if (byte == -1 && PyErr_Occurred())
        return -1;
    *out = (unsigned char)byte;
    return 0;
}

/* -- frames ----------------------------------------------------------------------------------- */

/* Frame(payload, media_time, concealed) without running Python code: a tuple of the Frame
 * type, filled as tuple.__new__ fills a subclass instance. Steals nothing. */
static PyObject *
make_frame(PyObject *payload, int64_t media_time, int concealed)
{
    PyObject *time = PyLong_FromLongLong(media_time);
    if (time == NULL)
        return NULL;
    PyObject *flag = concealed ? Py_True : Py_False;
#if PY_VERSION_HEX >= 0x030E0000
    /* 3.14 keeps more state in a tuple (a cached hash): go through tuple's own tp_new. */
    PyObject *items = PyTuple_Pack(3, payload, time, flag);
    Py_DECREF(time);
    if (items == NULL)
        return NULL;
    PyObject *args = PyTuple_Pack(1, items);
    Py_DECREF(items);
    if (args == NULL)
        return NULL;
    PyObject *frame = PyTuple_Type.tp_new(frame_type, args, NULL);
    Py_DECREF(args);
    return frame;
#else
    PyObject *frame = frame_type->tp_alloc(frame_type, 3);
    if (frame == NULL) {
        Py_DECREF(time);
        return NULL;
    }
    Py_INCREF(payload);
    PyTuple_SET_ITEM(frame, 0, payload);
    PyTuple_SET_ITEM(frame, 1, time);
    Py_INCREF(flag);
    PyTuple_SET_ITEM(frame, 2, flag);
    return frame;
#endif
}

static int
append_frame(PyObject *out, PyObject *payload, int64_t media_time, int concealed)
{
    PyObject *frame = make_frame(payload, media_time, concealed);
    if (frame == NULL)
        return -1;
    int rc = PyList_Append(out, frame);
    Py_DECREF(frame);
    return rc;
}

/* -- buffer ----------------------------------------------------------------------------------- */

/* Index of the first entry with ts >= key. */
static Py_ssize_t
buffer_find(JitterBuffer *self, int64_t key)
{
    Py_ssize_t lo = self->start, hi = self->start + self->count;
    /* Packets mostly arrive in order: check the end first. */
    if (self->count == 0 || self->buf[hi - 1].ts < key)
        return hi;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (self->buf[mid].ts < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Room for one more entry at the end of the array (compacting or growing). */
static int
buffer_reserve(JitterBuffer *self)
{
    if (self->start + self->count < self->cap)
        return 0;
    if (self->start > 0) {
        memmove(self->buf, self->buf + self->start, (size_t)self->count * sizeof(Entry));
        self->start = 0;
        return 0;
    }
    Py_ssize_t cap = self->cap ? self->cap * 2 : 16;
    Entry *buf = PyMem_Realloc(self->buf, (size_t)cap * sizeof(Entry));
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->buf = buf;
    self->cap = cap;
    return 0;
}

/* Insert at index (from buffer_find, after buffer_reserve); takes a new reference. */
static void
buffer_insert(JitterBuffer *self, Py_ssize_t index, int64_t ts, PyObject *payload,
              Py_ssize_t size)
{
    Py_ssize_t end = self->start + self->count;
    if (index < end)
        memmove(self->buf + index + 1, self->buf + index, (size_t)(end - index) * sizeof(Entry));
    Py_INCREF(payload);
    self->buf[index].ts = ts;
    self->buf[index].payload = payload;
    self->buf[index].size = size;
    self->count++;
}

/* Remove the head entry; the caller owns its payload reference. */
static Entry
buffer_pop_head(JitterBuffer *self)
{
    Entry head = self->buf[self->start];
    self->start++;
    self->count--;
    if (self->count == 0)
        self->start = 0;
    return head;
}

static void
buffer_clear(JitterBuffer *self)
{
    Py_ssize_t end = self->start + self->count;
    for (Py_ssize_t i = self->start; i < end; i++)
        Py_CLEAR(self->buf[i].payload);
    self->start = 0;
    self->count = 0;
}

/* -- state ------------------------------------------------------------------------------------ */

static void
jitter_update(JitterBuffer *self, int64_t rtp_timestamp, double arrival)
{
    double transit = arrival * (double)self->rate - (double)rtp_timestamp;
    double previous = self->transit;
    int had = self->has_transit;
    self->transit = transit;
    self->has_transit = 1;
    if (!had)
        return;
    double d = transit - previous;
    if (d > 2147483648.0)
        d -= 4294967296.0;
    else if (d < -2147483648.0)
        d += 4294967296.0;
    if (d < 0)
        d = -d;
    self->jitter += (d - self->jitter) / 16.0;
}

static void
reset_source_state(JitterBuffer *self, int64_t seq, int64_t raw_ts, int64_t ext_ts,
                   double arrival)
{
    self->highest_seq = seq;
    self->highest_seq_raw = seq & 0xFFFF;
    self->ts_ref = ext_ts;
    self->ts_ref_raw = raw_ts;
    self->ts_end = ext_ts;
    self->base = arrival - (double)ext_ts / (double)self->rate;
    self->has_next_ts = 0;
    self->underrun = 0;
    for (int i = 0; i < RECENT_SEQS; i++)
        self->recent[i] = NO_SEQ;
}

static void
start_source(JitterBuffer *self, const Packet *p, double arrival)
{
    self->ssrc = p->ssrc;
    self->has_ssrc = 1;
    Py_CLEAR(self->probe);
    self->has_transit = 0; /* InterarrivalJitter.restart */
    reset_source_state(self, p->seq, p->ts, 0, arrival);
}

static int
conceal(JitterBuffer *self, int64_t samples, PyObject *out)
{
    PyObject *payload = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)samples);
    if (payload == NULL)
        return -1;
    memset(PyBytes_AS_STRING(payload), self->silence, (size_t)samples);
    int rc = append_frame(out, payload, self->media_time, 1);
    Py_DECREF(payload);
    if (rc < 0)
        return -1;
    self->media_time += samples;
    self->stats[ST_CONCEALED_FRAMES]++;
    self->stats[ST_CONCEALED_SAMPLES] += samples;
    return 0;
}

/* jitter.py _release; steals nothing. */
static int
release(JitterBuffer *self, PyObject *payload, Py_ssize_t size, int64_t ts, int64_t next_ts,
        PyObject *out)
{
    PyObject *piece = payload;
    if (ts < next_ts) {
        /* Overlaps audio already handed on (a peer changing ptime mid-stream): keep the rest. */
        int64_t skip = next_ts - ts;
        if (skip >= size)
            piece = PyBytes_FromStringAndSize(NULL, 0);
        else
            piece = PyBytes_FromStringAndSize(PyBytes_AS_STRING(payload) + skip, size - skip);
        if (piece == NULL)
            return -1;
        size = PyBytes_GET_SIZE(piece);
        ts = next_ts;
    }
    else {
        Py_INCREF(piece);
    }
    int rc = append_frame(out, piece, self->media_time, 0);
    Py_DECREF(piece);
    if (rc < 0)
        return -1;
    self->media_time += size;
    self->next_ts = ts + size;
    self->has_next_ts = 1;
    self->stats[ST_RELEASED_FRAMES]++;
    return 0;
}

/* Hand on everything buffered now, filling the gaps between packets (they were lost). */
static int
flush_buffered(JitterBuffer *self)
{
    PyObject *out = self->ready;
    int have = self->has_next_ts;
    int64_t next_ts = self->next_ts;
    int rc = 0;
    Py_ssize_t end = self->start + self->count;
    for (Py_ssize_t i = self->start; i < end && rc == 0; i++) {
        Entry *e = &self->buf[i];
        int64_t ts = e->ts;
        if (!have) {
            next_ts = ts;
            have = 1;
        }
        if (ts + e->size <= next_ts) {
            self->stats[ST_LATE]++;
            continue;
        }
        if (ts > next_ts) {
            if (ts - next_ts <= self->max_gap) {
                while (next_ts < ts) {
                    int64_t step = self->frame_samples;
                    if (ts - next_ts < step)
                        step = ts - next_ts;
                    if (step <= 0) /* unreachable: frame_samples > 0 once a packet was taken */
                        step = ts - next_ts;
                    if (conceal(self, step, out) < 0) {
                        rc = -1;
                        break;
                    }
                    next_ts += step;
                }
                if (rc < 0)
                    break;
            }
            next_ts = ts;
        }
        if (release(self, e->payload, e->size, ts, next_ts, out) < 0) {
            rc = -1;
            break;
        }
        next_ts = self->next_ts;
    }
    buffer_clear(self);
    self->has_next_ts = 0;
    return rc;
}

static int
restart(JitterBuffer *self, const Packet *p, double arrival)
{
    if (flush_buffered(self) < 0)
        return -1;
    start_source(self, p, arrival);
    return 0;
}

static void
raise_reorder_need(JitterBuffer *self, double need)
{
    if (need > self->reorder_need) {
        need = self->max_delay < need ? self->max_delay : need; /* min(need, max_delay) */
        self->reorder_need = need;
        if (need > self->floor_)
            self->floor_ = need;
        if (need > self->target)
            self->target = need;
    }
}

static void
decay_reorder_need(JitterBuffer *self)
{
    double need = self->reorder_need - DECAY_PER_FRAME;
    if (need < 0.0)
        need = 0.0;
    self->reorder_need = need;
    double floor_ = need > self->min_delay ? need : self->min_delay; /* max(min_delay, need) */
    self->floor_ = floor_;
    double jitter_target = self->factor * self->jitter / (double)self->rate;
    double highest = jitter_target > floor_ ? jitter_target : floor_; /* max(floor, jt) */
    self->target = highest < self->max_delay ? highest : self->max_delay; /* min(max, that) */
}

static int
accept(JitterBuffer *self, const Packet *p, double arrival, int64_t ahead)
{
    int64_t *stats = self->stats;
    int64_t seq = self->highest_seq + ahead;
    int slot = (int)(seq & (RECENT_SEQS - 1));
    if (self->recent[slot] == seq) {
        stats[ST_DUPLICATES]++;
        return 0;
    }
    Py_ssize_t size = p->size;
    int64_t ext_ts = self->ts_ref +
                     (((p->ts - self->ts_ref_raw + 0x80000000LL) & 0xFFFFFFFFLL) - 0x80000000LL);
    if (ext_ts > EXT_LIMIT || ext_ts < -EXT_LIMIT) {
        PyErr_SetString(PyExc_OverflowError, "extended RTP timestamp out of range");
        return -1;
    }
    if (ahead > 0 && ext_ts - self->ts_end > self->max_gap) {
        /* A long silence-suppression pause or a timestamp jump: not worth filling. */
        stats[ST_RESYNCS]++;
        if (restart(self, p, arrival) < 0)
            return -1;
        return accept(self, p, arrival, 0);
    }
    if (self->has_next_ts && ext_ts + size <= self->next_ts) {
        int64_t next_ts = self->next_ts;
        if (ahead > 0 && next_ts - ext_ts > self->max_gap) {
            stats[ST_RESYNCS]++; /* timestamps went backwards in sequence: sender reset them */
            if (restart(self, p, arrival) < 0)
                return -1;
            return accept(self, p, arrival, 0);
        }
        stats[ST_LATE]++;
        if (ahead < 0)
            stats[ST_REORDERED]++;
        self->recent[slot] = seq;
        double lateness =
            arrival - (self->base + (double)ext_ts / (double)self->rate + self->delay);
        if (0 < lateness && self->delay + lateness <= self->max_delay) {
            self->delay += lateness;
            if (ahead < 0)
                raise_reorder_need(self, self->delay);
        }
        return 0;
    }
    Py_ssize_t index = buffer_find(self, ext_ts);
    if (index < self->start + self->count && self->buf[index].ts == ext_ts) {
        stats[ST_DUPLICATES]++; /* same timestamp under another sequence number */
        return 0;
    }
    if ((int64_t)self->count >= self->max_packets) {
        stats[ST_OVERFLOW]++;
        return 0;
    }
    if (self->ts_ref - ext_ts > self->max_gap || ext_ts - self->ts_end > self->max_gap) {
        /* Far from the stream's timestamps and not a forward jump in sequence (jitter.py). */
        if (ahead > 0) {
            stats[ST_RESYNCS]++;
            if (restart(self, p, arrival) < 0)
                return -1;
            return accept(self, p, arrival, 0);
        }
        stats[ST_INVALID]++;
        return 0;
    }
    Py_ssize_t start = self->start;
    if (buffer_reserve(self) < 0)
        return -1;
    index -= start - self->start; /* compaction moved the entries */
    if (ahead < 0) {
        stats[ST_REORDERED]++;
        if (!self->underrun)
            raise_reorder_need(self, arrival - self->base - (double)ext_ts / (double)self->rate);
    }
    else {
        self->highest_seq = seq;
        self->highest_seq_raw = p->seq;
        if (ext_ts >= self->ts_ref) {
            self->ts_ref = ext_ts;
            self->ts_ref_raw = p->ts;
            if (ext_ts + size > self->ts_end)
                self->ts_end = ext_ts + size;
            self->frame_samples = size;
        }
    }
    self->recent[slot] = seq;
    buffer_insert(self, index, ext_ts, p->payload, size);
    jitter_update(self, ext_ts, arrival);
    double implied_base = arrival - (double)ext_ts / (double)self->rate;
    if (self->underrun) {
        if (implied_base > self->base) /* max(base, implied_base) */
            self->base = implied_base;
        self->underrun = 0;
    }
    else if (implied_base < self->base) {
        self->base = implied_base;
    }
    double target = self->factor * self->jitter / (double)self->rate;
    if (target < self->floor_)
        target = self->floor_;
    if (target > self->max_delay)
        target = self->max_delay;
    self->target = target;
    if (target > self->delay)
        self->delay = target;
    return 0;
}

/* -- the type --------------------------------------------------------------------------------- */

static int
JitterBuffer_init(JitterBuffer *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"codec",         "min_delay_ms", "max_delay_ms",
                             "jitter_factor", "max_gap_ms",   "max_packet_ms",
                             "clock_rate",    "max_packets",  NULL};
    PyObject *codec = NULL, *min_obj = NULL, *max_obj = NULL, *factor_obj = NULL;
    PyObject *gap_obj = NULL, *packet_obj = NULL, *rate_obj = NULL, *packets_obj = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O$OOOOOOO:JitterBuffer", kwlist, &codec,
                                     &min_obj, &max_obj, &factor_obj, &gap_obj, &packet_obj,
                                     &rate_obj, &packets_obj))
        return -1;
    double min_delay_ms = DEFAULT_MIN_DELAY_MS, max_delay_ms = DEFAULT_MAX_DELAY_MS;
    double factor = DEFAULT_JITTER_FACTOR, max_gap_ms = DEFAULT_MAX_GAP_MS;
    double max_packet_ms = DEFAULT_MAX_PACKET_MS;
    int64_t max_packets = DEFAULT_MAX_PACKETS, rate = 8000;
    if ((min_obj && as_double(min_obj, "min_delay_ms", &min_delay_ms) < 0) ||
        (max_obj && as_double(max_obj, "max_delay_ms", &max_delay_ms) < 0) ||
        (factor_obj && as_double(factor_obj, "jitter_factor", &factor) < 0) ||
        (gap_obj && as_double(gap_obj, "max_gap_ms", &max_gap_ms) < 0) ||
        (packet_obj && as_double(packet_obj, "max_packet_ms", &max_packet_ms) < 0))
        return -1;
    if (!(0 <= min_delay_ms && min_delay_ms <= max_delay_ms)) {
        PyObject *lo = min_obj ? PyObject_Str(min_obj) : PyUnicode_FromString("20.0");
        PyObject *hi = max_obj ? PyObject_Str(max_obj) : PyUnicode_FromString("200.0");
        if (lo && hi)
            PyErr_Format(PyExc_ValueError,
                         "jitter buffer needs 0 <= min_delay_ms <= max_delay_ms, got %U/%U", lo,
                         hi);
        Py_XDECREF(lo);
        Py_XDECREF(hi);
        return -1;
    }
    int overflow = 0;
    if (packets_obj) {
        if (!PyLong_Check(packets_obj)) {
            PyErr_Format(PyExc_TypeError, "max_packets must be an int, not %.100s",
                         Py_TYPE(packets_obj)->tp_name);
            return -1;
        }
        long long value = PyLong_AsLongLongAndOverflow(packets_obj, &overflow);
        if (value == -1 && PyErr_Occurred())
            return -1;
        max_packets = overflow > 0 ? INT64_MAX : overflow < 0 ? INT64_MIN : (int64_t)value;
    }
    if (max_packets < 1) {
        PyErr_Format(PyExc_ValueError, "jitter buffer needs max_packets >= 1, got %S", packets_obj);
        return -1;
    }
    if (rate_obj) {
        if (!PyLong_Check(rate_obj)) {
            PyErr_Format(PyExc_TypeError, "clock_rate must be an int, not %.100s",
                         Py_TYPE(rate_obj)->tp_name);
            return -1;
        }
        long long value = PyLong_AsLongLongAndOverflow(rate_obj, &overflow);
        if (value == -1 && PyErr_Occurred())
            return -1;
        rate = overflow ? 0 : (int64_t)value;
        if (!(1 <= rate && rate <= 1000000)) {
            PyErr_Format(PyExc_ValueError,
                         "jitter buffer needs 1 <= clock_rate <= 1000000, got %S", rate_obj);
            return -1;
        }
    }
    unsigned char silence;
    PyObject *default_codec = NULL;
    if (codec == NULL) {
        codec = default_codec = PyUnicode_FromString("PCMU");
        if (codec == NULL)
            return -1;
    }
    int rc = lookup_silence(codec, &silence);
    Py_XDECREF(default_codec);
    if (rc < 0)
        return -1;
    int64_t max_gap, max_packet;
    if (py_int(max_gap_ms * (double)rate / 1000.0, &max_gap) < 0 ||
        py_int(max_packet_ms * (double)rate / 1000.0, &max_packet) < 0)
        return -1;

    /* __init__ may run again on an existing object: start from scratch. */
    buffer_clear(self);
    Py_CLEAR(self->probe);
    PyObject *ready = PyList_New(0);
    if (ready == NULL)
        return -1;
    Py_XSETREF(self->ready, ready);
    self->max_packets = max_packets;
    self->silence = silence;
    self->rate = rate;
    self->min_delay = min_delay_ms / 1000.0;
    self->max_delay = max_delay_ms / 1000.0;
    self->factor = factor;
    self->max_gap = max_gap;
    self->max_packet = max_packet;
    self->delay = self->min_delay;
    self->reorder_need = 0.0;
    self->floor_ = self->min_delay;
    self->target = self->min_delay;
    self->has_transit = 0;
    self->transit = 0.0;
    self->jitter = 0.0;
    self->media_time = 0;
    self->frame_samples = rate / 50; /* 20 ms until a packet says otherwise */
    self->has_ssrc = 0;
    self->has_previous_ssrc = 0;
    self->ssrc = self->previous_ssrc = 0;
    self->probe_arrival = 0.0;
    reset_source_state(self, 0, 0, 0, 0.0);
    memset(self->stats, 0, sizeof(self->stats));
    return 0;
}

static int
JitterBuffer_traverse(JitterBuffer *self, visitproc visit, void *arg)
{
    Py_VISIT(self->ready);
    Py_VISIT(self->probe);
    return 0;
}

static int
JitterBuffer_clear(JitterBuffer *self)
{
    Py_CLEAR(self->ready);
    Py_CLEAR(self->probe);
    return 0;
}

static void
JitterBuffer_dealloc(JitterBuffer *self)
{
    PyObject_GC_UnTrack(self);
    JitterBuffer_clear(self);
    if (self->buf != NULL) {
        buffer_clear(self);
        PyMem_Free(self->buf);
        self->buf = NULL;
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
JitterBuffer_set_codec(JitterBuffer *self, PyObject *codec)
{
    unsigned char silence;
    if (lookup_silence(codec, &silence) < 0)
        return NULL;
    self->silence = silence;
    Py_RETURN_NONE;
}

static PyObject *
JitterBuffer_push(JitterBuffer *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "push() takes 2 arguments (packet, arrival), %zd given",
                     nargs);
        return NULL;
    }
    if (self->ready == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "JitterBuffer.__init__ was not called");
        return NULL;
    }
    double arrival;
    if (as_double(args[1], "arrival", &arrival) < 0)
        return NULL;
    Packet p;
    if (read_packet(args[0], &p) < 0)
        return NULL;
    int64_t *stats = self->stats;
    int rc = 0;
    stats[ST_PUSHED]++;
    if (p.size == 0 || p.size > self->max_packet) {
        stats[ST_INVALID]++;
        goto done;
    }
    if (!self->has_ssrc || p.ssrc != self->ssrc) {
        if (self->has_ssrc) {
            if (self->has_previous_ssrc && p.ssrc == self->previous_ssrc) {
                stats[ST_LATE]++; /* in flight from the source we already switched away from */
                goto done;
            }
            if (flush_buffered(self) < 0) {
                rc = -1;
                goto done;
            }
            self->previous_ssrc = self->ssrc;
            self->has_previous_ssrc = 1;
            stats[ST_SSRC_CHANGES]++;
        }
        start_source(self, &p, arrival);
    }
    int64_t ahead = ((p.seq - self->highest_seq_raw + 0x8000) & 0xFFFF) - 0x8000;
    if (ahead > MAX_DROPOUT || ahead < -MAX_MISORDER) {
        PyObject *probe = self->probe;
        int confirmed = 0;
        Packet q;
        if (probe != NULL) {
            Py_INCREF(probe);
            if (read_packet(probe, &q) < 0) {
                Py_DECREF(probe);
                rc = -1;
                goto done;
            }
            if (p.seq == ((q.seq + 1) & 0xFFFF)) {
                /* RFC 3550 A.1: two sequential packets after a jump: the sender restarted. */
                confirmed = 1;
                double probe_arrival = self->probe_arrival;
                stats[ST_RESYNCS]++;
                if (restart(self, &q, probe_arrival) < 0 || accept(self, &q, probe_arrival, 0) < 0)
                    rc = -1;
                ahead = ((p.seq - self->highest_seq_raw + 0x8000) & 0xFFFF) - 0x8000;
            }
            Py_DECREF(q.payload);
            Py_DECREF(probe);
            if (rc < 0)
                goto done;
        }
        if (!confirmed) {
            Py_INCREF(args[0]);
            Py_XSETREF(self->probe, args[0]);
            self->probe_arrival = arrival;
            stats[ST_INVALID]++;
            goto done;
        }
    }
    rc = accept(self, &p, arrival, ahead);
done:
    Py_DECREF(p.payload);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
JitterBuffer_pop_ready(JitterBuffer *self, PyObject *now_obj)
{
    double now;
    if (as_double(now_obj, "now", &now) < 0)
        return NULL;
    if (self->ready == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "JitterBuffer.__init__ was not called");
        return NULL;
    }
    /* Everything with a timestamp up to `due` is due: one float computation per call. */
    double due = (now - self->base - self->delay) * (double)self->rate;
    if (PyList_GET_SIZE(self->ready) == 0 && self->has_next_ts && (double)self->next_ts > due)
        return PyList_New(0); /* nothing due: most clock ticks on a clean link */
    PyObject *fresh = PyList_New(0);
    if (fresh == NULL)
        return NULL;
    PyObject *out = self->ready;
    self->ready = fresh;
    while (self->count) {
        int64_t head = self->buf[self->start].ts;
        int64_t next_ts = self->has_next_ts ? self->next_ts : head;
        if ((double)next_ts > due)
            break;
        if (head == next_ts) {
            Entry e = buffer_pop_head(self);
            int rc = append_frame(out, e.payload, self->media_time, 0);
            Py_DECREF(e.payload);
            if (rc < 0)
                goto error;
            self->media_time += e.size;
            self->next_ts = head + e.size;
            self->has_next_ts = 1;
            self->stats[ST_RELEASED_FRAMES]++;
            if (self->reorder_need != 0.0)
                decay_reorder_need(self);
            if (self->delay > self->target) {
                double delay = self->delay - DECAY_PER_FRAME;
                self->delay = delay > self->target ? delay : self->target;
            }
        }
        else if (head < next_ts) {
            Entry e = buffer_pop_head(self);
            int rc = release(self, e.payload, e.size, head, next_ts, out);
            Py_DECREF(e.payload);
            if (rc < 0)
                goto error;
            if (self->reorder_need != 0.0)
                decay_reorder_need(self);
            if (self->delay > self->target) {
                double delay = self->delay - DECAY_PER_FRAME; /* max(target, delay - decay) */
                self->delay = delay > self->target ? delay : self->target;
            }
        }
        else {
            int64_t step = self->frame_samples;
            if (head - next_ts < step)
                step = head - next_ts;
            if (step <= 0) /* unreachable: frame_samples > 0 once a packet was taken */
                step = head - next_ts;
            if (conceal(self, step, out) < 0)
                goto error;
            self->next_ts = next_ts + step;
            self->has_next_ts = 1;
        }
    }
    if (!self->count && !self->underrun && self->has_next_ts) {
        if ((double)self->next_ts <= due) {
            self->underrun = 1;
            self->stats[ST_UNDERRUNS]++;
        }
    }
    return out;
error:
    Py_DECREF(out);
    return NULL;
}

static PyObject *
JitterBuffer_get_delay_ms(JitterBuffer *self, void *closure)
{
    return PyFloat_FromDouble(self->delay * 1000.0);
}

static PyObject *
JitterBuffer_get_target_ms(JitterBuffer *self, void *closure)
{
    return PyFloat_FromDouble(self->target * 1000.0);
}

static PyObject *
JitterBuffer_get_next_due(JitterBuffer *self, void *closure)
{
    if (self->count == 0)
        Py_RETURN_NONE;
    int64_t ts = self->has_next_ts ? self->next_ts : self->buf[self->start].ts;
    return PyFloat_FromDouble(self->base + (double)ts / (double)self->rate + self->delay);
}

static PyObject *
JitterBuffer_get_jitter_ms(JitterBuffer *self, void *closure)
{
    return PyFloat_FromDouble(self->jitter * 1000.0 / (double)self->rate);
}

static PyObject *
JitterBuffer_get_buffered_ms(JitterBuffer *self, void *closure)
{
    int64_t samples = 0;
    Py_ssize_t end = self->start + self->count;
    for (Py_ssize_t i = self->start; i < end; i++)
        samples += self->buf[i].size;
    return PyFloat_FromDouble((double)samples * 1000.0 / (double)self->rate);
}

static PyObject *
JitterBuffer_get_media_time(JitterBuffer *self, void *closure)
{
    return PyLong_FromLongLong(self->media_time);
}

static PyObject *
JitterBuffer_get_stats(JitterBuffer *self, void *closure)
{
    if (stats_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "gateway.media._jitter is not bound (import jitter.py)");
        return NULL;
    }
    PyObject *args = PyTuple_New(ST_COUNT);
    if (args == NULL)
        return NULL;
    for (int i = 0; i < ST_COUNT; i++) {
        PyObject *value = PyLong_FromLongLong(self->stats[i]);
        if (value == NULL) {
            Py_DECREF(args);
            return NULL;
        }
        PyTuple_SET_ITEM(args, i, value);
    }
    PyObject *stats = PyObject_Call(stats_type, args, NULL);
    Py_DECREF(args);
    return stats;
}

static PyMethodDef JitterBuffer_methods[] = {
    {"set_codec", (PyCFunction)JitterBuffer_set_codec, METH_O,
     "The codec changed (answer, re-INVITE): conceal with its silence byte from now on."},
    {"push", (PyCFunction)(void (*)(void))JitterBuffer_push, METH_FASTCALL,
     "push(packet, arrival): add one audio packet."},
    {"pop_ready", (PyCFunction)JitterBuffer_pop_ready, METH_O,
     "pop_ready(now) -> list[Frame]: frames due at `now`, in order and contiguous."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef JitterBuffer_getset[] = {
    {"delay_ms", (getter)JitterBuffer_get_delay_ms, NULL, NULL, NULL},
    {"target_ms", (getter)JitterBuffer_get_target_ms, NULL, NULL, NULL},
    {"next_due", (getter)JitterBuffer_get_next_due, NULL, NULL, NULL},
    {"jitter_ms", (getter)JitterBuffer_get_jitter_ms, NULL, NULL, NULL},
    {"buffered_ms", (getter)JitterBuffer_get_buffered_ms, NULL, NULL, NULL},
    {"media_time", (getter)JitterBuffer_get_media_time, NULL, NULL, NULL},
    {"stats", (getter)JitterBuffer_get_stats, NULL,
     "A JitterStats with the counts so far (a new object per access).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject JitterBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gateway.media._jitter.JitterBuffer",
    .tp_doc = "The inbound jitter buffer of gateway/media/jitter.py, compiled.",
    .tp_basicsize = sizeof(JitterBuffer),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)JitterBuffer_init,
    .tp_dealloc = (destructor)JitterBuffer_dealloc,
    .tp_traverse = (traverseproc)JitterBuffer_traverse,
    .tp_clear = (inquiry)JitterBuffer_clear,
    .tp_methods = JitterBuffer_methods,
    .tp_getset = JitterBuffer_getset,
};

/* -- module ----------------------------------------------------------------------------------- */

static PyObject *
module_bind(PyObject *module, PyObject *args)
{
    PyObject *frame, *stats, *silence;
    if (!PyArg_ParseTuple(args, "O!OO:_bind", &PyType_Type, &frame, &stats, &silence))
        return NULL;
    PyTypeObject *type = (PyTypeObject *)frame;
    /* A NamedTuple: a tuple subclass without instance dict or extra slots. */
    if (!PyType_IsSubtype(type, &PyTuple_Type) ||
        type->tp_basicsize != PyTuple_Type.tp_basicsize ||
        type->tp_itemsize != PyTuple_Type.tp_itemsize) {
        PyErr_SetString(PyExc_TypeError, "_bind needs a NamedTuple type for Frame");
        return NULL;
    }
    if (!PyCallable_Check(stats) || !PyCallable_Check(silence)) {
        PyErr_SetString(PyExc_TypeError, "_bind needs callables for JitterStats, silence_byte");
        return NULL;
    }
    Py_INCREF(frame);
    Py_XSETREF(frame_type, type);
    Py_INCREF(stats);
    Py_XSETREF(stats_type, stats);
    Py_INCREF(silence);
    Py_XSETREF(silence_byte_func, silence);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"_bind", module_bind, METH_VARARGS,
     "_bind(Frame, JitterStats, silence_byte): the Python types the buffer builds (jitter.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef jitter_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "gateway.media._jitter",
    .m_doc = "Compiled jitter buffer; use gateway.media.jitter.JitterBuffer, not this module.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__jitter(void)
{
    if (PyType_Ready(&JitterBufferType) < 0)
        return NULL;
    str_sequence_number = PyUnicode_InternFromString("sequence_number");
    str_timestamp = PyUnicode_InternFromString("timestamp");
    str_ssrc = PyUnicode_InternFromString("ssrc");
    str_payload = PyUnicode_InternFromString("payload");
    if (!str_sequence_number || !str_timestamp || !str_ssrc || !str_payload)
        return NULL;
    PyObject *module = PyModule_Create(&jitter_module);
    if (module == NULL)
        return NULL;
    Py_INCREF(&JitterBufferType);
    if (PyModule_AddObject(module, "JitterBuffer", (PyObject *)&JitterBufferType) < 0) {
        Py_DECREF(&JitterBufferType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
