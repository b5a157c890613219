/* gateway.media._jitter, part 3: InboundPath, the compiled twin of gateway/media/inbound.py
 * PyInboundPath (issue 14): one call per datagram does the RTP decode (rtp.py decode_rtp), the
 * latched-source compare (latch.py), the payload-type routing, the token bucket of real time,
 * RFC 3550 A.1/A.3/A.8 reception statistics (stats.py ReceptionStats, InterarrivalJitter:
 * _inbound_reception.c) with the SSRC-change and straggler rules, the stream's StreamStats counters, and the compiled jitter
 * buffer's push and release on arrival without a Python call. Read the behaviour in inbound.py;
 * tests/media/test_inbound_parity.py holds the two to identical results.
 *
 * What stays Python, called from here only off the common path: SourceLatch.check_rtp (a source
 * that is not the latched one), RtpPacket or decode_rtp (to hand a packet of another payload type
 * to the stream, or to push into a pure-Python jitter buffer), ReportBlock (every ~5 s).
 *
 * Exactness, beyond _jitter.h's rules: times are doubles (a Python int time beyond 2**53 would
 * round; times come from loop.time()). The StreamStats counters are read and written through
 * the dataclass's slots on every packet (so Python code reading or changing them sees and is seen
 * at once) with Python's own number protocol. Deliberate differences from the pure class, on
 * input only in-process code can construct: a datagram that is not exactly `bytes` is a
 * TypeError, a `now` that is neither float nor int is a TypeError even for a datagram the pure
 * class drops before looking at the time, and a clock_rate or LSR that is not an int is a
 * TypeError. */
#include "_inbound.h"
#include <structmember.h>

/* The StreamStats fields this path updates (stats.py), in the order of `ib_field_names`. */
enum {
    F_PACKETS_RECEIVED,
    F_BYTES_RECEIVED,
    F_LARGEST_GAP_MS,
    F_DROPPED_RATE,
    F_DROPPED_MALFORMED,
    F_DROPPED_FOREIGN_SOURCE,
    F_DROPPED_PROBATION,
    F_SSRC_CHANGES,
    F_COUNT
};
static const char *const ib_field_names[F_COUNT] = {
    "packets_received",   "bytes_received",         "largest_gap_ms",      "dropped_rate",
    "dropped_malformed",  "dropped_foreign_source", "dropped_probation",   "ssrc_changes",
};

/* Bound by _bind_inbound() from inbound.py. */
static PyObject *ib_decode_rtp = NULL; /* rtp.decode_rtp */
static PyObject *ib_packet_type = NULL; /* rtp.RtpPacket */
PyObject *ib_report_block = NULL; /* rtcp.ReportBlock */
static PyTypeObject *ib_stats_type = NULL; /* stats.StreamStats */
static PyObject *ib_foreign = NULL; /* latch.FOREIGN */
static PyObject *ib_slack_obj = NULL; /* inbound.RELEASE_SLACK_S */
static double ib_slack = 0.001;
static PyMemberDef *ib_member[F_COUNT];
static PyObject *ib_str_latched, *ib_str_check_rtp, *ib_str_payload_type, *ib_str_clock_rate,
    *ib_str_rate_burst_ms, *ib_str_push, *ib_str_pop_ready, *ib_one, *ib_zero;

typedef struct {
    PyObject_HEAD
    PyObject *config, *stats, *latch;
    double rate_capacity, rate_tokens, rate_at;
    int64_t rate_min_cost;
    int has_rate_at;
    int has_reception, has_previous;
    Reception reception, previous;
    int64_t lost_retired;
    int has_last_audio_rx;
    double last_audio_rx;
} Inbound;

/* -- helpers ---------------------------------------------------------------------------------- */

static int
ib_int64(PyObject *obj, const char *name, int64_t *out)
{
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", name,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    long long value = PyLong_AsLongLong(obj);
    if (value == -1 && PyErr_Occurred())
        return -1;
    *out = (int64_t)value;
    return 0;
}

static int
ib_config_int(Inbound *self, PyObject *name, const char *label, int64_t *out)
{
    PyObject *value = PyObject_GetAttr(self->config, name);
    if (value == NULL)
        return -1;
    int rc = ib_int64(value, label, out);
    Py_DECREF(value);
    return rc;
}

/* stats.<field> += delta, as Python does it (any number type the field holds). */
static int
ib_count(Inbound *self, int field, int64_t delta)
{
    return jb_stats_add(self->stats, ib_member[field], (long long)delta);
}

/* `a != b` as a Python `if` reads it: 1, 0, or -1 with an exception. */
static int
ib_differs(PyObject *a, PyObject *b)
{
    if (a == b && (PyUnicode_CheckExact(a) || PyLong_CheckExact(a)))
        return 0;
    if (PyUnicode_CheckExact(a) && PyUnicode_CheckExact(b)) {
        int cmp = PyUnicode_Compare(a, b);
        if (cmp == -1 && PyErr_Occurred())
            return -1;
        return cmp != 0;
    }
    PyObject *result = PyObject_RichCompare(a, b, Py_NE);
    if (result == NULL)
        return -1;
    int truth = PyObject_IsTrue(result);
    Py_DECREF(result);
    return truth;
}

/* obj[index] (index 0 or 1): a new reference. */
static PyObject *
ib_item(PyObject *obj, Py_ssize_t index)
{
    if (PyTuple_CheckExact(obj) && index < PyTuple_GET_SIZE(obj)) {
        PyObject *item = PyTuple_GET_ITEM(obj, index);
        Py_INCREF(item);
        return item;
    }
    return PyObject_GetItem(obj, index ? ib_one : ib_zero);
}

/* `latched[1] != addr[1] or latched[0] != addr[0]` */
static int
ib_other_source(PyObject *latched, PyObject *addr)
{
    for (Py_ssize_t index = 1; index >= 0; index--) {
        PyObject *ours = ib_item(latched, index);
        if (ours == NULL)
            return -1;
        PyObject *theirs = ib_item(addr, index);
        if (theirs == NULL) {
            Py_DECREF(ours);
            return -1;
        }
        int differs = ib_differs(ours, theirs);
        Py_DECREF(ours);
        Py_DECREF(theirs);
        if (differs != 0)
            return differs;
    }
    return 0;
}

/* -- the type --------------------------------------------------------------------------------- */

static int
Inbound_init(Inbound *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"config", "stats", "latch", NULL};
    PyObject *config, *stats, *latch;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO:InboundPath", kwlist, &config, &stats,
                                     &latch))
        return -1;
    if (ib_stats_type == NULL || ib_report_block == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "InboundPath is not bound (import inbound.py)");
        return -1;
    }
    if (Py_TYPE(stats) != ib_stats_type) {
        PyErr_Format(PyExc_TypeError, "stats must be a StreamStats, not %.100s",
                     Py_TYPE(stats)->tp_name);
        return -1;
    }
    /* float(config.rate_burst_ms) * config.clock_rate / 1000.0 and max(clock_rate // 200, 1) */
    PyObject *burst_obj = PyObject_GetAttr(config, ib_str_rate_burst_ms);
    if (burst_obj == NULL)
        return -1;
    double burst = PyFloat_AsDouble(burst_obj);
    Py_DECREF(burst_obj);
    if (burst == -1.0 && PyErr_Occurred())
        return -1;
    PyObject *rate_obj = PyObject_GetAttr(config, ib_str_clock_rate);
    if (rate_obj == NULL)
        return -1;
    int64_t rate;
    int rc = ib_int64(rate_obj, "clock_rate", &rate);
    Py_DECREF(rate_obj);
    if (rc < 0)
        return -1;
    Py_INCREF(config);
    Py_XSETREF(self->config, config);
    Py_INCREF(stats);
    Py_XSETREF(self->stats, stats);
    Py_INCREF(latch);
    Py_XSETREF(self->latch, latch);
    self->rate_capacity = burst * (double)rate / 1000.0;
    int64_t min_cost = ib_floordiv(rate, 200);
    self->rate_min_cost = min_cost > 1 ? min_cost : 1;
    self->rate_tokens = self->rate_capacity;
    self->has_rate_at = 0;
    self->rate_at = 0.0;
    self->has_reception = self->has_previous = 0;
    memset(&self->reception, 0, sizeof(self->reception));
    memset(&self->previous, 0, sizeof(self->previous));
    self->lost_retired = 0;
    self->has_last_audio_rx = 0;
    self->last_audio_rx = 0.0;
    return 0;
}

static int
Inbound_traverse(Inbound *self, visitproc visit, void *arg)
{
    Py_VISIT(self->config);
    Py_VISIT(self->stats);
    Py_VISIT(self->latch);
    return 0;
}

static int
Inbound_clear(Inbound *self)
{
    Py_CLEAR(self->config);
    Py_CLEAR(self->stats);
    Py_CLEAR(self->latch);
    return 0;
}

JB_GC_DEALLOC(Inbound, Inbound)

/* The audio path after the rate bound: statistics, counters, jitter buffer. */
static PyObject *
ib_audio(Inbound *self, PyObject *data, const unsigned char *bytes, Py_ssize_t pos,
         Py_ssize_t size, int64_t seq, int64_t ts, int64_t ssrc, PyObject *now_obj, double now,
         PyObject *jitter)
{
    Reception *reception = &self->reception;
    if (!self->has_reception || reception->ssrc != ssrc) {
        if (self->has_previous && self->previous.ssrc == ssrc) {
            /* In flight from the source we just left: account it there, no switch back. */
            reception = &self->previous;
        }
        else {
            int64_t rate;
            if (self->has_reception) {
                if (ib_count(self, F_SSRC_CHANGES, 1) < 0)
                    return NULL;
                if (self->has_previous) {
                    int64_t lost = ib_lost(&self->previous);
                    self->lost_retired += lost > 0 ? lost : 0;
                }
                self->previous = self->reception;
                self->has_previous = 1;
            }
            if (ib_config_int(self, ib_str_clock_rate, "clock_rate", &rate) < 0)
                return NULL;
            ib_reception_start(&self->reception, ssrc, seq, rate);
            self->has_reception = 1;
        }
    }
    ib_on_packet(reception, seq, ts, now, 1);
    if (self->has_last_audio_rx) {
        double gap_ms = (now - self->last_audio_rx) * 1000.0;
        PyObject *largest = PyMember_GetOne((const char *)self->stats, ib_member[F_LARGEST_GAP_MS]);
        if (largest == NULL)
            return NULL;
        int wider;
        if (PyFloat_CheckExact(largest)) {
            wider = gap_ms > PyFloat_AS_DOUBLE(largest);
        }
        else {
            PyObject *gap = PyFloat_FromDouble(gap_ms);
            wider = gap ? PyObject_RichCompareBool(gap, largest, Py_GT) : -1;
            Py_XDECREF(gap);
        }
        Py_DECREF(largest);
        if (wider < 0)
            return NULL;
        if (wider) {
            PyObject *gap = PyFloat_FromDouble(gap_ms);
            if (gap == NULL)
                return NULL;
            int rc = PyMember_SetOne((char *)self->stats, ib_member[F_LARGEST_GAP_MS], gap);
            Py_DECREF(gap);
            if (rc < 0)
                return NULL;
        }
    }
    self->last_audio_rx = now;
    self->has_last_audio_rx = 1;
    if (ib_count(self, F_PACKETS_RECEIVED, 1) < 0 || ib_count(self, F_BYTES_RECEIVED, size) < 0)
        return NULL;
    if (Py_TYPE(jitter) == &jb_buffer_type) {
        JitterBuffer *jb = (JitterBuffer *)jitter;
        if (jb->ready == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "JitterBuffer.__init__ was not called");
            return NULL;
        }
        Packet p;
        p.seq = seq;
        p.ts = ts;
        p.ssrc = ssrc;
        p.size = size;
        p.payload = PyBytes_FromStringAndSize((const char *)bytes + pos, size);
        if (p.payload == NULL)
            return NULL;
        int rc = jb_push(jb, &p, now);
        Py_DECREF(p.payload);
        if (rc < 0)
            return NULL;
        /* Release on arrival (inbound.py) */
        return jb_pop_ready(jb, now + ib_slack);
    }
    /* Another buffer (the pure one in a test): through its Python methods. */
    PyObject *packet = PyObject_CallOneArg(ib_decode_rtp, data);
    if (packet == NULL)
        return NULL;
    PyObject *pushed = PyObject_CallMethodObjArgs(jitter, ib_str_push, packet, now_obj, NULL);
    Py_DECREF(packet);
    if (pushed == NULL)
        return NULL;
    Py_DECREF(pushed);
    PyObject *due = PyNumber_Add(now_obj, ib_slack_obj);
    if (due == NULL)
        return NULL;
    PyObject *frames = PyObject_CallMethodOneArg(jitter, ib_str_pop_ready, due);
    Py_DECREF(due);
    return frames;
}

static PyObject *
Inbound_receive(Inbound *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError,
                     "receive() takes 4 arguments (data, addr, now, jitter), %zd given", nargs);
        return NULL;
    }
    PyObject *data = args[0], *addr = args[1], *now_obj = args[2], *jitter = args[3];
    if (self->stats == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "InboundPath.__init__ was not called");
        return NULL;
    }
    if (Py_TYPE(self->stats) != ib_stats_type) { /* _bind_inbound was called again since */
        PyErr_SetString(PyExc_TypeError, "InboundPath's stats are not the bound StreamStats");
        return NULL;
    }
    if (!PyBytes_CheckExact(data)) {
        PyErr_Format(PyExc_TypeError, "RTP datagram must be bytes, not %.100s",
                     Py_TYPE(data)->tp_name);
        return NULL;
    }
    double now;
    if (jb_as_double(now_obj, "now", &now) < 0)
        return NULL;

    /* rtp.py decode_rtp */
    const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    Py_ssize_t pos = 12, end = size;
    if (size < 12)
        goto malformed;
    unsigned char first = b[0], second = b[1];
    int64_t seq = ((int64_t)b[2] << 8) | b[3];
    int64_t ts = ((int64_t)b[4] << 24) | ((int64_t)b[5] << 16) | ((int64_t)b[6] << 8) | b[7];
    int64_t ssrc = ((int64_t)b[8] << 24) | ((int64_t)b[9] << 16) | ((int64_t)b[10] << 8) | b[11];
    if (first != 0x80) {
        if (first >> 6 != 2)
            goto malformed;
        pos = 12 + 4 * (Py_ssize_t)(first & 0x0F);
        if (size < pos)
            goto malformed;
        if (first & 0x10) {
            if (size < pos + 4)
                goto malformed;
            Py_ssize_t words = ((Py_ssize_t)b[pos + 2] << 8) | b[pos + 3];
            pos += 4;
            if (size < pos + 4 * words)
                goto malformed;
            pos += 4 * words;
        }
        if (first & 0x20) {
            Py_ssize_t padding = b[size - 1];
            if (padding == 0 || padding > size - pos)
                goto malformed;
            end = size - padding;
        }
    }
    int64_t pt = second & 0x7F;

    /* latch.py: the per-packet case is one compare with the latched source */
    PyObject *latched = PyObject_GetAttr(self->latch, ib_str_latched);
    if (latched == NULL)
        return NULL;
    int other_source = latched == Py_None ? 1 : ib_other_source(latched, addr);
    Py_DECREF(latched);
    if (other_source < 0)
        return NULL;
    if (other_source) {
        PyObject *ssrc_obj = PyLong_FromLongLong(ssrc);
        PyObject *seq_obj = PyLong_FromLongLong(seq);
        PyObject *verdict = NULL;
        if (ssrc_obj != NULL && seq_obj != NULL)
            verdict = PyObject_CallMethodObjArgs(self->latch, ib_str_check_rtp, addr, ssrc_obj,
                                                 seq_obj, NULL);
        Py_XDECREF(ssrc_obj);
        Py_XDECREF(seq_obj);
        if (verdict == NULL)
            return NULL;
        int refused = PyObject_IsTrue(verdict);
        int foreign = refused > 0 ? PyObject_RichCompareBool(verdict, ib_foreign, Py_EQ) : 0;
        Py_DECREF(verdict);
        if (refused < 0 || foreign < 0)
            return NULL;
        if (refused) {
            if (ib_count(self, foreign ? F_DROPPED_FOREIGN_SOURCE : F_DROPPED_PROBATION, 1) < 0)
                return NULL;
            Py_RETURN_NONE;
        }
    }

    /* payload-type routing */
    PyObject *audio_pt = PyObject_GetAttr(self->config, ib_str_payload_type);
    if (audio_pt == NULL)
        return NULL;
    int not_audio;
    if (PyLong_CheckExact(audio_pt)) {
        int overflow = 0;
        long long value = PyLong_AsLongLongAndOverflow(audio_pt, &overflow);
        not_audio = overflow || value != pt;
    }
    else {
        PyObject *pt_obj = PyLong_FromLongLong(pt);
        not_audio = pt_obj ? ib_differs(pt_obj, audio_pt) : -1;
        Py_XDECREF(pt_obj);
    }
    Py_DECREF(audio_pt);
    if (not_audio < 0)
        return NULL;
    if (not_audio) {
        if (self->has_reception && self->reception.ssrc == ssrc)
            /* Events and CN share the audio's sequence space when sent from one SSRC. */
            ib_on_packet(&self->reception, seq, ts, now, 0);
        if (first != 0x80)
            return PyObject_CallOneArg(ib_decode_rtp, data); /* CSRC, extension or padding */
        /* decode_rtp's fast path: RtpPacket(pt, seq, ts, ssrc, data[12:], marker) */
        return PyObject_CallFunction(ib_packet_type, "LLLLy#O", (long long)pt, (long long)seq,
                                     (long long)ts, (long long)ssrc, (const char *)b + 12,
                                     size - 12, second > 0x7F ? Py_True : Py_False);
    }

    /* the token bucket of real time: samples = payload bytes (G.711) */
    Py_ssize_t payload_size = end - pos;
    if (self->rate_capacity > 0) {
        double tokens = self->rate_tokens;
        if (self->has_rate_at && now > self->rate_at) {
            int64_t rate;
            if (ib_config_int(self, ib_str_clock_rate, "clock_rate", &rate) < 0)
                return NULL;
            tokens += (now - self->rate_at) * (double)rate;
            if (tokens > self->rate_capacity)
                tokens = self->rate_capacity;
        }
        self->rate_at = now;
        self->has_rate_at = 1;
        int64_t cost = payload_size > self->rate_min_cost ? payload_size : self->rate_min_cost;
        if (tokens < (double)cost) {
            self->rate_tokens = tokens;
            if (ib_count(self, F_DROPPED_RATE, 1) < 0)
                return NULL;
            return PyList_New(0);
        }
        self->rate_tokens = tokens - (double)cost;
    }
    return ib_audio(self, data, b, pos, payload_size, seq, ts, ssrc, now_obj, now, jitter);

malformed:
    if (ib_count(self, F_DROPPED_MALFORMED, 1) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Inbound_report_block(Inbound *self, PyObject *now)
{
    if (!self->has_reception)
        Py_RETURN_NONE;
    return ib_report_block_of(&self->reception, now);
}

static PyObject *
Inbound_on_sender_report(Inbound *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError,
                     "on_sender_report() takes 3 arguments (ssrc, ntp_middle32, arrival), "
                     "%zd given", nargs);
        return NULL;
    }
    if (!self->has_reception)
        Py_RETURN_NONE;
    PyObject *ssrc_obj = PyLong_FromLongLong(self->reception.ssrc);
    if (ssrc_obj == NULL)
        return NULL;
    int same = PyObject_RichCompareBool(args[0], ssrc_obj, Py_EQ);
    Py_DECREF(ssrc_obj);
    if (same <= 0)
        return same < 0 ? NULL : Py_NewRef(Py_None);
    int64_t middle;
    double arrival;
    if (ib_int64(args[1], "ntp_middle32", &middle) < 0 ||
        jb_as_double(args[2], "arrival", &arrival) < 0)
        return NULL;
    self->reception.last_sr_ntp_middle = middle;
    self->reception.last_sr_arrival = arrival;
    self->reception.has_last_sr_arrival = 1;
    Py_RETURN_NONE;
}

static PyObject *
Inbound_get_lost(Inbound *self, void *closure)
{
    int64_t lost = self->lost_retired;
    if (self->has_previous) {
        int64_t previous = ib_lost(&self->previous);
        lost += previous > 0 ? previous : 0;
    }
    if (self->has_reception) {
        int64_t current = ib_lost(&self->reception);
        lost += current > 0 ? current : 0;
    }
    return PyLong_FromLongLong(lost);
}

static PyObject *
Inbound_get_jitter_ms(Inbound *self, void *closure)
{
    if (!self->has_reception)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(self->reception.jitter * 1000.0 /
                              (double)self->reception.clock_rate);
}

static PyObject *
Inbound_get_source_ssrc(Inbound *self, void *closure)
{
    if (!self->has_reception)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(self->reception.ssrc);
}

static PyMethodDef Inbound_methods[] = {
    {"receive", (PyCFunction)(void (*)(void))Inbound_receive, METH_FASTCALL,
     "receive(data, addr, now, jitter) -> None | list[Frame] | RtpPacket (inbound.py)."},
    {"report_block", (PyCFunction)Inbound_report_block, METH_O,
     "report_block(now) -> ReportBlock | None: about the current source."},
    {"on_sender_report", (PyCFunction)(void (*)(void))Inbound_on_sender_report, METH_FASTCALL,
     "on_sender_report(ssrc, ntp_middle32, arrival): an SR from the current source."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Inbound_getset[] = {
    {"lost", (getter)Inbound_get_lost, NULL, NULL, NULL},
    {"jitter_ms", (getter)Inbound_get_jitter_ms, NULL, NULL, NULL},
    {"source_ssrc", (getter)Inbound_get_source_ssrc, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject InboundType = {
    JB_TYPE_SLOTS(Inbound, Inbound, "InboundPath",
                  "The inbound RTP path of gateway/media/inbound.py, compiled.",
                  0),
    .tp_methods = Inbound_methods,
    .tp_getset = Inbound_getset,
};

/* -- module ----------------------------------------------------------------------------------- */

PyObject *
ib_bind(PyObject *module, PyObject *args)
{
    PyObject *decode, *packet_type, *report_block, *stats, *foreign, *slack;
    if (!PyArg_ParseTuple(args, "OOOO!OO!:_bind_inbound", &decode, &packet_type, &report_block,
                          &PyType_Type, &stats, &foreign, &PyFloat_Type, &slack))
        return NULL;
    if (!PyCallable_Check(decode) || !PyCallable_Check(packet_type) ||
        !PyCallable_Check(report_block)) {
        PyErr_SetString(PyExc_TypeError,
                        "_bind_inbound needs callables for decode_rtp, RtpPacket, ReportBlock");
        return NULL;
    }
    PyMemberDef *members[F_COUNT];
    if (jb_stats_members(stats, ib_field_names, F_COUNT, members, "_bind_inbound") < 0)
        return NULL;
    memcpy(ib_member, members, sizeof(members));
    Py_INCREF(decode);
    Py_XSETREF(ib_decode_rtp, decode);
    Py_INCREF(packet_type);
    Py_XSETREF(ib_packet_type, packet_type);
    Py_INCREF(report_block);
    Py_XSETREF(ib_report_block, report_block);
    Py_INCREF(stats);
    Py_XSETREF(ib_stats_type, (PyTypeObject *)stats);
    Py_INCREF(foreign);
    Py_XSETREF(ib_foreign, foreign);
    Py_INCREF(slack);
    Py_XSETREF(ib_slack_obj, slack);
    ib_slack = PyFloat_AS_DOUBLE(slack);
    Py_RETURN_NONE;
}

int
ib_add_type(PyObject *module)
{
    static const JbName names[] = {
        {&ib_str_latched, "latched"},
        {&ib_str_check_rtp, "check_rtp"},
        {&ib_str_payload_type, "payload_type"},
        {&ib_str_clock_rate, "clock_rate"},
        {&ib_str_rate_burst_ms, "rate_burst_ms"},
        {&ib_str_push, "push"},
        {&ib_str_pop_ready, "pop_ready"},
    };
    ib_one = PyLong_FromLong(1);
    ib_zero = PyLong_FromLong(0);
    if (!ib_one || !ib_zero || jb_intern(names, sizeof(names) / sizeof(names[0])) < 0)
        return -1;
    return jb_add_type(module, &InboundType, "InboundPath");
}
