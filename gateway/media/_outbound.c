/* gateway.media._jitter, part 4: OutboundPath, the compiled twin of gateway/media/outbound.py
 * PyOutboundPath (issue 14): per packet the payload type, the 12-byte RTP header and the payload
 * in one allocation, the send address (latched source or the SDP's), the transport's sendto, the
 * send error / packet / octet counters in the stream's StreamStats and what the next RTCP sender
 * report needs. Read the behaviour in outbound.py; tests/media/test_outbound_parity.py holds the
 * two to identical bytes, addresses, counters and reports.
 *
 * What stays Python, called from here: the transport's sendto, SrtpSession.protect_rtp (when
 * `srtp` is set), the clock (the loop's time()), and the attribute reads of the config
 * (payload_type, telephone_event_pt, latching) and the latch (latched) on every packet, so a
 * re-INVITE's change is seen at once, as the pure class sees it. The StreamStats counters are
 * read and written through the dataclass's slots with Python's number protocol (as _inbound.c).
 *
 * Deliberate differences from the pure class, on input only in-process code can construct:
 * a payload type outside 0-127 is a ValueError when a packet is built (the pure class sends a
 * wrong header or raises struct.error); a timestamp step, offset or sample count that is not
 * an int is a TypeError (as the pure class's `&` gives), raised at the same point; ssrc, seq,
 * ts and last_send_ts only take ints in their wire range (32/16/32/32 bits); config, stats and
 * latch cannot be replaced after construction. Names: ob_. */
#include "_playout.h"
#include <structmember.h>

enum { F_PACKETS_SENT, F_BYTES_SENT, F_SEND_ERRORS, F_COUNT };
static const char *const ob_field_names[F_COUNT] = {"packets_sent", "bytes_sent", "send_errors"};

/* Bound by _bind_outbound() from outbound.py. */
static PyTypeObject *ob_stats_type = NULL; /* stats.StreamStats */
static PyObject *ob_caught = NULL; /* (OSError, ValueError, srtp.SrtpError): a counted error */
static long ob_cn_pt = 13; /* outbound.CN_PAYLOAD_TYPE */
static PyMemberDef *ob_member[F_COUNT];
static PyObject *ob_str_payload_type, *ob_str_telephone_event_pt, *ob_str_latching,
    *ob_str_latched, *ob_str_sendto, *ob_str_protect_rtp, *ob_str_payload, *ob_str_marker,
    *ob_str_pt, *ob_str_timestamp_step, *ob_str_timestamp_offset, *ob_str_samples;

typedef struct {
    PyObject_HEAD
    PyObject *config, *stats, *latch;
    PyObject *transport, *remote_rtp, *srtp, *clock; /* NULL reads as None */
    PyObject *last_send_time; /* None or the clock's value */
    uint32_t ssrc, ts, last_send_ts;
    uint16_t seq;
    char may_send, sent_since_report;
} Outbound;

#define OB_NONE(obj) ((obj) == NULL || (obj) == Py_None)

/* -- helpers ---------------------------------------------------------------------------------- */

/* A method's arguments, positional or by name, into out[0..nparams) (NULL: not given). */
static int
ob_parse(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
         PyObject *const *names, int nparams, int required, PyObject **out)
{
    if (nargs > nparams) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %d arguments (%zd given)", fname,
                     nparams, nargs);
        return -1;
    }
    for (int i = 0; i < nparams; i++)
        out[i] = i < nargs ? args[i] : NULL;
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        int found = -1;
        for (int j = 0; j < nparams && found < 0; j++) {
            if (key == names[j])
                found = j;
            else {
                int eq = PyUnicode_Compare(key, names[j]);
                if (eq == -1 && PyErr_Occurred())
                    return -1;
                if (eq == 0)
                    found = j;
            }
        }
        if (found < 0) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fname,
                         key);
            return -1;
        }
        if (out[found] != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%U'", fname,
                         key);
            return -1;
        }
        out[found] = args[nargs + k];
    }
    for (int i = 0; i < required; i++) {
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%U'", fname,
                         names[i]);
            return -1;
        }
    }
    return 0;
}

/* (base + sign * delta) & 0xFFFFFFFF with Python's unbounded ints. */
static int
ob_add_mask(uint32_t base, PyObject *delta, int sign, uint32_t *out)
{
    if (!PyLong_Check(delta)) {
        PyErr_Format(PyExc_TypeError, "RTP timestamp arithmetic needs an int, not %.100s",
                     Py_TYPE(delta)->tp_name);
        return -1;
    }
    unsigned long long low = PyLong_AsUnsignedLongLongMask(delta); /* modulo 2**64 */
    if (low == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    uint32_t d = (uint32_t)low;
    *out = sign > 0 ? base + d : base - d;
    return 0;
}

/* stats.<field> += delta, as Python does it (any number type the field holds). */
static int
ob_count(Outbound *self, int field, Py_ssize_t delta)
{
    if (ob_stats_type == NULL || Py_TYPE(self->stats) != ob_stats_type) {
        PyErr_SetString(PyExc_TypeError, "OutboundPath's stats are not the bound StreamStats");
        return -1;
    }
    return jb_stats_add(self->stats, ob_member[field], (long long)delta);
}

/* Where to send: a new reference, Py_None when nowhere, NULL with an exception. */
static PyObject *
ob_address(Outbound *self)
{
    PyObject *remote = self->remote_rtp;
    if (OB_NONE(remote))
        Py_RETURN_NONE;
    Py_INCREF(remote);
    PyObject *latching = PyObject_GetAttr(self->config, ob_str_latching);
    if (latching == NULL)
        goto error;
    int on = PyObject_IsTrue(latching);
    Py_DECREF(latching);
    if (on < 0)
        goto error;
    if (!on)
        return remote;
    /* `self.latch.latched or remote` */
    PyObject *latched = PyObject_GetAttr(self->latch, ob_str_latched);
    if (latched == NULL)
        goto error;
    int truth = PyObject_IsTrue(latched);
    if (truth < 0) {
        Py_DECREF(latched);
        goto error;
    }
    if (truth) {
        Py_DECREF(remote);
        return latched;
    }
    Py_DECREF(latched);
    return remote;
error:
    Py_DECREF(remote);
    return NULL;
}

/* outbound.py _send: 0 (sent, refused or counted as a send error) or -1 with an exception. */
static int
ob_send(Outbound *self, PyObject *pt_obj, PyObject *marker_obj, uint32_t timestamp,
        PyObject *payload)
{
    if (OB_NONE(self->transport) || OB_NONE(self->remote_rtp) || !self->may_send)
        return 0;
    PyObject *transport = self->transport, *addr = NULL, *packet = NULL;
    Py_INCREF(transport);
    addr = ob_address(self);
    if (addr == NULL)
        goto error;
    /* the fixed header (rtp.encode_rtp_header) */
    int marker = marker_obj == NULL ? 0 : PyObject_IsTrue(marker_obj);
    if (marker < 0)
        goto error;
    if (!PyLong_Check(pt_obj)) {
        PyErr_Format(PyExc_TypeError, "RTP payload type must be an int, not %.100s",
                     Py_TYPE(pt_obj)->tp_name);
        goto error;
    }
    long pt = PyLong_AsLong(pt_obj);
    if (pt == -1 && PyErr_Occurred())
        goto error;
    if (pt < 0 || pt > 127) {
        PyErr_Format(PyExc_ValueError, "RTP payload type out of range: %ld", pt);
        goto error;
    }
    const char *data;
    Py_ssize_t size;
    Py_buffer view = {0};
    int has_view = 0;
    if (PyBytes_CheckExact(payload)) {
        data = PyBytes_AS_STRING(payload);
        size = PyBytes_GET_SIZE(payload);
    }
    else {
        /* bytes + payload: any object with the buffer protocol, else TypeError */
        if (PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE) < 0)
            goto error;
        has_view = 1;
        data = (const char *)view.buf;
        size = view.len;
    }
    if (size > PY_SSIZE_T_MAX - 12) {
        if (has_view)
            PyBuffer_Release(&view);
        PyErr_NoMemory();
        goto error;
    }
    packet = PyBytes_FromStringAndSize(NULL, 12 + size);
    if (packet == NULL) {
        if (has_view)
            PyBuffer_Release(&view);
        goto error;
    }
    unsigned char *b = (unsigned char *)PyBytes_AS_STRING(packet);
    uint16_t seq = self->seq;
    uint32_t ssrc = self->ssrc;
    b[0] = 0x80;
    b[1] = (unsigned char)((marker ? 0x80 : 0) | pt);
    b[2] = (unsigned char)(seq >> 8);
    b[3] = (unsigned char)seq;
    b[4] = (unsigned char)(timestamp >> 24);
    b[5] = (unsigned char)(timestamp >> 16);
    b[6] = (unsigned char)(timestamp >> 8);
    b[7] = (unsigned char)timestamp;
    b[8] = (unsigned char)(ssrc >> 24);
    b[9] = (unsigned char)(ssrc >> 16);
    b[10] = (unsigned char)(ssrc >> 8);
    b[11] = (unsigned char)ssrc;
    if (size)
        memcpy(b + 12, data, (size_t)size);
    if (has_view)
        PyBuffer_Release(&view);
    /* SRTP (Python), then the transport */
    PyObject *result = NULL;
    if (!OB_NONE(self->srtp)) {
        PyObject *srtp = self->srtp;
        Py_INCREF(srtp);
        PyObject *protected = PyObject_CallMethodOneArg(srtp, ob_str_protect_rtp, packet);
        Py_DECREF(srtp);
        if (protected == NULL)
            goto failed;
        Py_SETREF(packet, protected);
    }
    {
        PyObject *call[3] = {transport, packet, addr};
        result = PyObject_VectorcallMethod(ob_str_sendto, call, 3, NULL);
    }
failed:
    Py_CLEAR(packet);
    Py_CLEAR(addr);
    Py_CLEAR(transport);
    if (result == NULL) {
        if (!PyErr_ExceptionMatches(ob_caught))
            return -1;
        /* A send failure stays a counter, never an exception in the shared clock's tick. */
        PyErr_Clear();
        return ob_count(self, F_SEND_ERRORS, 1);
    }
    Py_DECREF(result);
    self->seq = (uint16_t)(self->seq + 1);
    if (ob_count(self, F_PACKETS_SENT, 1) < 0)
        return -1;
    Py_ssize_t sent = PyBytes_CheckExact(payload) ? PyBytes_GET_SIZE(payload) : PyObject_Size(payload);
    if (sent < 0 || ob_count(self, F_BYTES_SENT, sent) < 0)
        return -1;
    self->sent_since_report = 1;
    self->last_send_ts = timestamp;
    if (!OB_NONE(self->clock)) {
        PyObject *clock = self->clock;
        Py_INCREF(clock);
        PyObject *now = PyObject_CallNoArgs(clock);
        Py_DECREF(clock);
        if (now == NULL)
            return -1;
        Py_SETREF(self->last_send_time, now);
    }
    return 0;
error:
    Py_XDECREF(packet);
    Py_XDECREF(addr);
    Py_DECREF(transport);
    return -1;
}

/* -- the type --------------------------------------------------------------------------------- */

static int
ob_uint(PyObject *value, const char *name, unsigned long long limit, unsigned long long *out)
{
    if (value == NULL) {
        PyErr_Format(PyExc_TypeError, "cannot delete %s", name);
        return -1;
    }
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", name,
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow || v < 0 || (unsigned long long)v > limit) {
        PyErr_Format(PyExc_ValueError, "%s must be within 0..%llu", name, limit);
        return -1;
    }
    *out = (unsigned long long)v;
    return 0;
}

static int
Outbound_init(Outbound *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"config", "stats", "latch", "ssrc", "seq", "ts", NULL};
    PyObject *config, *stats, *latch, *ssrc_obj, *seq_obj, *ts_obj;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOO:OutboundPath", kwlist, &config,
                                     &stats, &latch, &ssrc_obj, &seq_obj, &ts_obj))
        return -1;
    if (ob_stats_type == NULL || ob_caught == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "OutboundPath is not bound (import outbound.py)");
        return -1;
    }
    if (Py_TYPE(stats) != ob_stats_type) {
        PyErr_Format(PyExc_TypeError, "stats must be a StreamStats, not %.100s",
                     Py_TYPE(stats)->tp_name);
        return -1;
    }
    unsigned long long ssrc, seq, ts;
    if (ob_uint(ssrc_obj, "ssrc", 0xFFFFFFFFull, &ssrc) < 0 ||
        ob_uint(seq_obj, "seq", 0xFFFFull, &seq) < 0 ||
        ob_uint(ts_obj, "ts", 0xFFFFFFFFull, &ts) < 0)
        return -1;
    Py_INCREF(config);
    Py_XSETREF(self->config, config);
    Py_INCREF(stats);
    Py_XSETREF(self->stats, stats);
    Py_INCREF(latch);
    Py_XSETREF(self->latch, latch);
    Py_CLEAR(self->transport);
    Py_CLEAR(self->remote_rtp);
    Py_CLEAR(self->srtp);
    Py_CLEAR(self->clock);
    Py_INCREF(Py_None);
    Py_XSETREF(self->last_send_time, Py_None);
    self->ssrc = (uint32_t)ssrc;
    self->seq = (uint16_t)seq;
    self->ts = self->last_send_ts = (uint32_t)ts;
    self->may_send = 1;
    self->sent_since_report = 0;
    return 0;
}

static int
Outbound_traverse(Outbound *self, visitproc visit, void *arg)
{
    Py_VISIT(self->config);
    Py_VISIT(self->stats);
    Py_VISIT(self->latch);
    Py_VISIT(self->transport);
    Py_VISIT(self->remote_rtp);
    Py_VISIT(self->srtp);
    Py_VISIT(self->clock);
    Py_VISIT(self->last_send_time);
    return 0;
}

static int
Outbound_clear(Outbound *self)
{
    Py_CLEAR(self->config);
    Py_CLEAR(self->stats);
    Py_CLEAR(self->latch);
    Py_CLEAR(self->transport);
    Py_CLEAR(self->remote_rtp);
    Py_CLEAR(self->srtp);
    Py_CLEAR(self->clock);
    Py_CLEAR(self->last_send_time);
    return 0;
}

JB_GC_DEALLOC(Outbound, Outbound)

static int
ob_ready(Outbound *self)
{
    if (self->config == NULL || self->stats == NULL || self->latch == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "OutboundPath.__init__ was not called");
        return -1;
    }
    return 0;
}

static PyObject *
Outbound_send_frame(Outbound *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *names[4] = {ob_str_payload, ob_str_marker, ob_str_pt, ob_str_timestamp_step};
    PyObject *a[4];
    if (ob_parse("send_frame", args, nargs, kwnames, names, 4, 1, a) < 0 || ob_ready(self) < 0)
        return NULL;
    PyObject *pt = a[2];
    int owned = 0;
    if (OB_NONE(pt)) {
        pt = PyObject_GetAttr(self->config, ob_str_payload_type);
        if (pt == NULL)
            return NULL;
        owned = 1;
    }
    int rc = ob_send(self, pt, a[1], self->ts, a[0]);
    if (owned)
        Py_DECREF(pt);
    if (rc < 0)
        return NULL;
    if (a[3] == NULL)
        self->ts += 160;
    else if (ob_add_mask(self->ts, a[3], 1, &self->ts) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Outbound_send_event(Outbound *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *names[3] = {ob_str_payload, ob_str_marker, ob_str_timestamp_offset};
    PyObject *a[3];
    if (ob_parse("send_event", args, nargs, kwnames, names, 3, 3, a) < 0 || ob_ready(self) < 0)
        return NULL;
    PyObject *pt = PyObject_GetAttr(self->config, ob_str_telephone_event_pt);
    if (pt == NULL)
        return NULL;
    if (pt != Py_None) {
        /* RFC 4733 2.3.5: all packets of one event carry its start timestamp */
        uint32_t start;
        int rc = ob_add_mask(self->ts, a[2], -1, &start);
        if (rc == 0)
            rc = ob_send(self, pt, a[1], start, a[0]);
        if (rc < 0) {
            Py_DECREF(pt);
            return NULL;
        }
    }
    Py_DECREF(pt);
    self->ts += 160;
    Py_RETURN_NONE;
}

static PyObject *
Outbound_send_comfort_noise(Outbound *self, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames)
{
    PyObject *names[1] = {ob_str_payload};
    PyObject *a[1];
    if (ob_parse("send_comfort_noise", args, nargs, kwnames, names, 1, 1, a) < 0 ||
        ob_send_cn_c((PyObject *)self, a[0]) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Outbound_advance(Outbound *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *names[1] = {ob_str_samples};
    PyObject *a[1];
    if (ob_parse("advance", args, nargs, kwnames, names, 1, 1, a) < 0)
        return NULL;
    if (ob_add_mask(self->ts, a[0], 1, &self->ts) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* -- attributes ------------------------------------------------------------------------------- */

#define OB_UINT_ATTR(field, label, limit, ctype)                                               \
    static PyObject *Outbound_get_##field(Outbound *self, void *closure)                        \
    {                                                                                          \
        return PyLong_FromUnsignedLong((unsigned long)self->field);                            \
    }                                                                                          \
    static int Outbound_set_##field(Outbound *self, PyObject *value, void *closure)            \
    {                                                                                          \
        unsigned long long v;                                                                  \
        if (ob_uint(value, label, limit, &v) < 0)                                              \
            return -1;                                                                         \
        self->field = (ctype)v;                                                                \
        return 0;                                                                              \
    }
OB_UINT_ATTR(ssrc, "ssrc", 0xFFFFFFFFull, uint32_t)
OB_UINT_ATTR(seq, "seq", 0xFFFFull, uint16_t)
OB_UINT_ATTR(ts, "ts", 0xFFFFFFFFull, uint32_t)
OB_UINT_ATTR(last_send_ts, "last_send_ts", 0xFFFFFFFFull, uint32_t)

JB_FLAG_ATTR(Outbound, Outbound, may_send, may_send)
JB_FLAG_ATTR(Outbound, Outbound, sent_since_report, sent_since_report)

static PyObject *
Outbound_get_last_send_time(Outbound *self, void *closure)
{
    return Py_NewRef(self->last_send_time != NULL ? self->last_send_time : Py_None);
}

static int
Outbound_set_last_send_time(Outbound *self, PyObject *value, void *closure)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_TypeError, "cannot delete last_send_time");
        return -1;
    }
    Py_INCREF(value);
    Py_XSETREF(self->last_send_time, value);
    return 0;
}

static PyObject *
Outbound_get_send_address(Outbound *self, void *closure)
{
    if (ob_ready(self) < 0)
        return NULL;
    return ob_address(self);
}

static PyGetSetDef Outbound_getset[] = {
    {"ssrc", (getter)Outbound_get_ssrc, (setter)Outbound_set_ssrc, NULL, NULL},
    {"seq", (getter)Outbound_get_seq, (setter)Outbound_set_seq, NULL, NULL},
    {"ts", (getter)Outbound_get_ts, (setter)Outbound_set_ts, NULL, NULL},
    {"last_send_ts", (getter)Outbound_get_last_send_ts, (setter)Outbound_set_last_send_ts, NULL,
     NULL},
    {"last_send_time", (getter)Outbound_get_last_send_time,
     (setter)Outbound_set_last_send_time, NULL, NULL},
    {"may_send", (getter)Outbound_get_may_send, (setter)Outbound_set_may_send, NULL, NULL},
    {"sent_since_report", (getter)Outbound_get_sent_since_report,
     (setter)Outbound_set_sent_since_report, NULL, NULL},
    {"send_address", (getter)Outbound_get_send_address, NULL,
     "The latched source when latching is on and latched, else the SDP's; None without.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef Outbound_members[] = {
    {"config", T_OBJECT, offsetof(Outbound, config), READONLY, NULL},
    {"stats", T_OBJECT, offsetof(Outbound, stats), READONLY, NULL},
    {"latch", T_OBJECT, offsetof(Outbound, latch), READONLY, NULL},
    {"transport", T_OBJECT, offsetof(Outbound, transport), 0, NULL},
    {"remote_rtp", T_OBJECT, offsetof(Outbound, remote_rtp), 0, NULL},
    {"srtp", T_OBJECT, offsetof(Outbound, srtp), 0, NULL},
    {"clock", T_OBJECT, offsetof(Outbound, clock), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef Outbound_methods[] = {
    {"send_frame", (PyCFunction)(void (*)(void))Outbound_send_frame,
     METH_FASTCALL | METH_KEYWORDS,
     "send_frame(payload, marker=False, pt=None, timestamp_step=160): an audio frame."},
    {"send_event", (PyCFunction)(void (*)(void))Outbound_send_event,
     METH_FASTCALL | METH_KEYWORDS,
     "send_event(payload, marker, timestamp_offset): an RFC 4733 packet."},
    {"send_comfort_noise", (PyCFunction)(void (*)(void))Outbound_send_comfort_noise,
     METH_FASTCALL | METH_KEYWORDS, "send_comfort_noise(payload): an RFC 3389 packet."},
    {"advance", (PyCFunction)(void (*)(void))Outbound_advance, METH_FASTCALL | METH_KEYWORDS,
     "advance(samples): nothing sent this tick; the media timestamp moves on."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject OutboundType = {
    JB_TYPE_SLOTS(Outbound, Outbound, "OutboundPath",
                  "The outbound RTP path of gateway/media/outbound.py, compiled.",
                  0),
    .tp_methods = Outbound_methods,
    .tp_members = Outbound_members,
    .tp_getset = Outbound_getset,
};

/* -- the senders for a C caller (the compiled CallOutput tick, _tick.c) ------------------------ */

PyObject *
ob_sender_of(PyObject *callable, int which)
{
    if (callable == NULL || !PyCFunction_Check(callable))
        return NULL;
    PyObject *self = PyCFunction_GET_SELF(callable);
    if (self == NULL || Py_TYPE(self) != &OutboundType)
        return NULL;
    PyCFunction want = which == OB_SEND_FRAME ? (PyCFunction)(void (*)(void))Outbound_send_frame
                       : which == OB_SEND_CN
                           ? (PyCFunction)(void (*)(void))Outbound_send_comfort_noise
                           : (PyCFunction)(void (*)(void))Outbound_advance;
    return PyCFunction_GET_FUNCTION(callable) == want ? self : NULL;
}

/* ob_send at the current timestamp, which then moves one frame on; takes `pt`'s reference. */
static int
ob_send_tick(Outbound *self, PyObject *pt, PyObject *marker, PyObject *payload)
{
    if (pt == NULL)
        return -1;
    int rc = ob_send(self, pt, marker, self->ts, payload);
    Py_DECREF(pt);
    if (rc < 0)
        return -1;
    self->ts += 160;
    return 0;
}

/* send_frame(payload, marker): the payload type from the config, timestamp step 160. */
int
ob_send_frame_c(PyObject *path, PyObject *payload, int marker)
{
    Outbound *self = (Outbound *)path;
    if (ob_ready(self) < 0)
        return -1;
    return ob_send_tick(self, PyObject_GetAttr(self->config, ob_str_payload_type),
                        marker ? Py_True : Py_False, payload);
}

int
ob_send_cn_c(PyObject *path, PyObject *payload)
{
    Outbound *self = (Outbound *)path;
    if (ob_ready(self) < 0)
        return -1;
    return ob_send_tick(self, PyLong_FromLong(ob_cn_pt), NULL, payload);
}

int
ob_advance_c(PyObject *path, uint32_t samples)
{
    ((Outbound *)path)->ts += samples;
    return 0;
}

/* -- module ----------------------------------------------------------------------------------- */

PyObject *
ob_bind(PyObject *module, PyObject *args)
{
    PyObject *stats, *srtp_error;
    long cn_pt;
    if (!PyArg_ParseTuple(args, "O!O!l:_bind_outbound", &PyType_Type, &stats, &PyType_Type,
                          &srtp_error, &cn_pt))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)srtp_error, (PyTypeObject *)PyExc_Exception)) {
        PyErr_SetString(PyExc_TypeError, "_bind_outbound needs an exception class for SrtpError");
        return NULL;
    }
    if (cn_pt < 0 || cn_pt > 127) {
        PyErr_SetString(PyExc_ValueError, "_bind_outbound: CN payload type out of range");
        return NULL;
    }
    PyMemberDef *members[F_COUNT];
    if (jb_stats_members(stats, ob_field_names, F_COUNT, members, "_bind_outbound") < 0)
        return NULL;
    PyObject *caught = PyTuple_Pack(3, PyExc_OSError, PyExc_ValueError, srtp_error);
    if (caught == NULL)
        return NULL;
    memcpy(ob_member, members, sizeof(members));
    Py_INCREF(stats);
    Py_XSETREF(ob_stats_type, (PyTypeObject *)stats);
    Py_XSETREF(ob_caught, caught);
    ob_cn_pt = cn_pt;
    Py_RETURN_NONE;
}

int
ob_add_type(PyObject *module)
{
    static const JbName names[] = {
        {&ob_str_payload_type, "payload_type"},
        {&ob_str_telephone_event_pt, "telephone_event_pt"},
        {&ob_str_latching, "latching"},
        {&ob_str_latched, "latched"},
        {&ob_str_sendto, "sendto"},
        {&ob_str_protect_rtp, "protect_rtp"},
        {&ob_str_payload, "payload"},
        {&ob_str_marker, "marker"},
        {&ob_str_pt, "pt"},
        {&ob_str_timestamp_step, "timestamp_step"},
        {&ob_str_timestamp_offset, "timestamp_offset"},
        {&ob_str_samples, "samples"},
    };
    if (jb_intern(names, sizeof(names) / sizeof(names[0])) < 0)
        return -1;
    return jb_add_type(module, &OutboundType, "OutboundPath");
}
