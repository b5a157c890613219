/* gateway.media._jitter, part 2 of 2: the JitterBuffer type (constructor, push, pop_ready,
 * properties) and the module. The logic it calls is in _jitter_core.c; read _jitter.h first. */
#include "_playout.h"

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
    if ((min_obj && jb_as_double(min_obj, "min_delay_ms", &min_delay_ms) < 0) ||
        (max_obj && jb_as_double(max_obj, "max_delay_ms", &max_delay_ms) < 0) ||
        (factor_obj && jb_as_double(factor_obj, "jitter_factor", &factor) < 0) ||
        (gap_obj && jb_as_double(gap_obj, "max_gap_ms", &max_gap_ms) < 0) ||
        (packet_obj && jb_as_double(packet_obj, "max_packet_ms", &max_packet_ms) < 0))
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
    int rc = jb_lookup_silence(codec, &silence);
    Py_XDECREF(default_codec);
    if (rc < 0)
        return -1;
    int64_t max_gap, max_packet;
    if (jb_py_int(max_gap_ms * (double)rate / 1000.0, &max_gap) < 0 ||
        jb_py_int(max_packet_ms * (double)rate / 1000.0, &max_packet) < 0)
        return -1;

    /* __init__ may run again on an existing object: start from scratch. */
    jb_buffer_clear(self);
    jb_clear_probe(self);
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
    self->min_conceal = rate / 100 > 1 ? rate / 100 : 1; /* jitter.py _min_conceal: 10 ms */
    self->credit = (double)max_gap;
    self->credit_at = 0.0;
    self->has_credit_at = 0;
    self->has_ssrc = 0;
    self->has_previous_ssrc = 0;
    self->ssrc = self->previous_ssrc = 0;
    self->probe_arrival = 0.0;
    jb_reset_source_state(self, 0, 0, 0, 0.0);
    memset(self->stats, 0, sizeof(self->stats));
    return 0;
}

static int
JitterBuffer_traverse(JitterBuffer *self, visitproc visit, void *arg)
{
    Py_VISIT(self->ready);
    return 0;
}

static int
JitterBuffer_clear(JitterBuffer *self)
{
    Py_CLEAR(self->ready);
    jb_clear_probe(self);
    return 0;
}

static void
JitterBuffer_dealloc(JitterBuffer *self)
{
    PyObject_GC_UnTrack(self);
    JitterBuffer_clear(self);
    if (self->buf != NULL) {
        jb_buffer_clear(self);
        PyMem_Free(self->buf);
        self->buf = NULL;
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
JitterBuffer_set_codec(JitterBuffer *self, PyObject *codec)
{
    unsigned char silence;
    if (jb_lookup_silence(codec, &silence) < 0)
        return NULL;
    self->silence = silence;
    Py_RETURN_NONE;
}

/* push() on a decoded packet (p->payload borrowed): 0, or -1 with an exception set. */
int
jb_push(JitterBuffer *self, const Packet *p, double arrival)
{
    int64_t *stats = self->stats;
    stats[ST_PUSHED]++;
    if (p->size == 0 || p->size > self->max_packet) {
        stats[ST_INVALID]++;
        return 0;
    }
    if (!self->has_ssrc || p->ssrc != self->ssrc) {
        if (self->has_ssrc) {
            if (self->has_previous_ssrc && p->ssrc == self->previous_ssrc) {
                stats[ST_LATE]++; /* in flight from the source we already switched away from */
                return 0;
            }
            if (jb_flush_buffered(self) < 0)
                return -1;
            self->previous_ssrc = self->ssrc;
            self->has_previous_ssrc = 1;
            stats[ST_SSRC_CHANGES]++;
        }
        jb_start_source(self, p, arrival);
    }
    int64_t ahead = ((p->seq - self->highest_seq_raw + 0x8000) & 0xFFFF) - 0x8000;
    if (ahead > MAX_DROPOUT || ahead < -MAX_MISORDER) {
        if (self->has_probe && p->seq == ((self->probe.seq + 1) & 0xFFFF)) {
            /* RFC 3550 A.1: two sequential packets after a jump: the sender restarted. */
            Packet q = self->probe;
            double probe_arrival = self->probe_arrival;
            Py_INCREF(q.payload); /* restarting clears the probe */
            stats[ST_RESYNCS]++;
            int rc = 0;
            if (jb_restart(self, &q, probe_arrival) < 0 ||
                jb_accept(self, &q, probe_arrival, 0) < 0)
                rc = -1;
            Py_DECREF(q.payload);
            if (rc < 0)
                return -1;
            ahead = ((p->seq - self->highest_seq_raw + 0x8000) & 0xFFFF) - 0x8000;
        }
        else {
            /* Kept as a copy of its fields (jitter.py keeps the packet object; the two differ
             * only if in-process code mutates a packet after pushing it). */
            Py_INCREF(p->payload);
            jb_clear_probe(self);
            self->probe = *p;
            self->has_probe = 1;
            self->probe_arrival = arrival;
            stats[ST_INVALID]++;
            return 0;
        }
    }
    return jb_accept(self, p, arrival, ahead);
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
    if (jb_as_double(args[1], "arrival", &arrival) < 0)
        return NULL;
    Packet p;
    if (jb_read_packet(args[0], &p) < 0)
        return NULL;
    int rc = jb_push(self, &p, arrival);
    Py_DECREF(p.payload);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* pop_ready(now) on a C time: a new list, or NULL with an exception set. */
PyObject *
jb_pop_ready(JitterBuffer *self, double now)
{
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
            Entry e = jb_buffer_pop_head(self);
            int rc = jb_append_frame(out, e.payload, self->media_time, 0);
            Py_DECREF(e.payload);
            if (rc < 0)
                goto error;
            self->media_time += e.size;
            self->next_ts = head + e.size;
            self->has_next_ts = 1;
            self->stats[ST_RELEASED_FRAMES]++;
            if (self->reorder_need != 0.0)
                jb_decay_reorder_need(self);
            if (self->delay > self->target) {
                double delay = self->delay - DECAY_PER_FRAME;
                self->delay = delay > self->target ? delay : self->target;
            }
        }
        else if (head < next_ts) {
            Entry e = jb_buffer_pop_head(self);
            int rc = jb_release(self, e.payload, e.size, head, next_ts, out);
            Py_DECREF(e.payload);
            if (rc < 0)
                goto error;
            if (self->reorder_need != 0.0)
                jb_decay_reorder_need(self);
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
            if (!jb_take_credit(self, step, now)) {
                /* More concealment than real time allows: the rest of the gap is skipped. */
                self->stats[ST_CONCEAL_SKIPPED]++;
                self->next_ts = head;
                self->has_next_ts = 1;
                continue;
            }
            if (jb_conceal(self, step, out) < 0)
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
JitterBuffer_pop_ready(JitterBuffer *self, PyObject *now_obj)
{
    double now;
    if (jb_as_double(now_obj, "now", &now) < 0)
        return NULL;
    if (self->ready == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "JitterBuffer.__init__ was not called");
        return NULL;
    }
    return jb_pop_ready(self, now);
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
    if (jb_stats_type == NULL) {
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
    PyObject *stats = PyObject_Call(jb_stats_type, args, NULL);
    Py_DECREF(args);
    return stats;
}

static PyMethodDef JitterBuffer_methods[] = {
    {"set_codec", (PyCFunction)JitterBuffer_set_codec, METH_O,
     "The codec changed (answer, re-INVITE): jb_conceal with its silence byte from now on."},
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

PyTypeObject jb_buffer_type = {
    JB_TYPE_SLOTS(JitterBuffer, JitterBuffer, "JitterBuffer",
                  "The inbound jitter buffer of gateway/media/jitter.py, compiled.",
                  0),
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
    if (jb_check_named_tuple(type, "_bind", "Frame") < 0)
        return NULL;
    if (!PyCallable_Check(stats) || !PyCallable_Check(silence)) {
        PyErr_SetString(PyExc_TypeError, "_bind needs callables for JitterStats, silence_byte");
        return NULL;
    }
    Py_INCREF(frame);
    Py_XSETREF(jb_frame_type, type);
    Py_INCREF(stats);
    Py_XSETREF(jb_stats_type, stats);
    Py_INCREF(silence);
    Py_XSETREF(jb_silence_byte_func, silence);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"_bind", module_bind, METH_VARARGS,
     "_bind(Frame, JitterStats, silence_byte): the Python types the buffer builds (jitter.py)."},
    {"_bind_inbound", ib_bind, METH_VARARGS,
     "_bind_inbound(decode_rtp, RtpPacket, ReportBlock, StreamStats, FOREIGN, RELEASE_SLACK_S): "
     "what the "
     "inbound path calls, builds and updates (inbound.py)."},
    {"_bind_outbound", ob_bind, METH_VARARGS,
     "_bind_outbound(StreamStats, SrtpError, CN_PAYLOAD_TYPE): what the outbound path updates "
     "and catches (outbound.py)."},
    {"_bind_playout", pq_bind, METH_VARARGS,
     "_bind_playout(PlayoutFrame, FlushReport, PlayoutStats, IdlePolicy members, FrameKind "
     "members, default codec, DEFAULT_MAX_QUEUED_BYTES, DEFAULT_CN_LEVEL) (playout.py)."},
    {"_bind_tick", ct_bind, METH_VARARGS,
     "_bind_tick(CallOutputStats, Rfc4733Sender): what the compiled tick builds (pacer.py)."},
    {"_bind_clock", sc_bind, METH_NOARGS,
     "_bind_clock(): the compiled slot wakeup needs nothing bound (pacer.py, stream.py)."},
    {"run_slot", (PyCFunction)(void (*)(void))sc_run_slot, METH_FASTCALL,
     "run_slot(members, run_from, stop, first, first_deadline, epoch, period, offset, stats, "
     "on_error, index): the member loop of one slot wakeup (pacer.py _py_run_slot)."},
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
    static const JbName names[] = {
        {&jb_str_sequence_number, "sequence_number"},
        {&jb_str_timestamp, "timestamp"},
        {&jb_str_ssrc, "ssrc"},
        {&jb_str_payload, "payload"},
    };
    if (jb_intern(names, sizeof(names) / sizeof(names[0])) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&jitter_module);
    if (module == NULL)
        return NULL;
    if (jb_add_type(module, &jb_buffer_type, "JitterBuffer") < 0 || ib_add_type(module) < 0 ||
        ob_add_type(module) < 0 || pq_add_type(module) < 0 || ct_add_type(module) < 0 ||
        sc_add_types(module) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
