/* gateway.media._jitter, part 6: CallOutputCore, the compiled tick of gateway/media/pacer.py
 * PyCallOutput (issue 14): per 20 ms, the clock-gap check, the DTMF branch, the playout frame
 * and its send. pacer.CallOutput is this type with pacer.py's Python control methods (start,
 * ride, stop, send_digits) mixed in. Read the behaviour in PyCallOutput.tick, line by line;
 * tests/media/test_tick_parity.py holds the two to identical calls of the senders, counters
 * and queue states, exceptions included.
 *
 * With the compiled PlayoutQueue (_playout.c) the frame comes from pq_next: no PlayoutFrame,
 * no method call. With the compiled outbound path's own bound methods as senders (what
 * MediaLeg.start_output passes) send_frame, send_comfort_noise and advance are C calls
 * (ob_send_frame_c...). Anything else (a pure queue, a recording wrapper, a test's recorder) is
 * called through Python exactly as the pure tick calls it. The DTMF branch stays Python calls
 * (Rfc4733Sender), behind the `_dtmf_busy` flag as in the pure tick.
 *
 * Deliberate differences from the pure class: frame_index must be an int within +-2**53;
 * queue, the senders and dtmf cannot be replaced after construction. Names: ct_. */
#include "_playout.h"
#include <structmember.h>

enum { C_AUDIO, C_IDLE, C_CN, C_EVENTS, C_GAPS, C_NOTHING, C_COUNT };

/* Bound by _bind_tick() from pacer.py. */
static PyObject *ct_stats_type; /* CallOutputStats */
static PyObject *ct_sender_type; /* dtmf.Rfc4733Sender */
static PyObject *ct_str_active, *ct_str_next_packet, *ct_str_pause_for_dtmf,
    *ct_str_resume_after_dtmf, *ct_str_paused, *ct_str_next_frame, *ct_str_payload,
    *ct_str_marker, *ct_str_kind, *ct_str_timestamp_offset, *ct_str_silence_frame;

typedef struct {
    PyObject_HEAD
    PyObject *queue, *dtmf, *silence;
    PyObject *send_frame, *send_event, *send_cn, *advance; /* NULL: not given */
    /* The OutboundPath behind send_frame / send_cn / advance when they are its own methods
     * (borrowed: the bound methods above hold it), else NULL. */
    PyObject *ob_frame, *ob_cn, *ob_advance;
    PlayoutQueue *pq; /* queue, when it is the compiled PlayoutQueue (borrowed) */
    long long last_frame;
    char has_last, force_marker, dtmf_busy;
    long long stats[C_COUNT];
} CallOutputCore;

#define FRAME_LIMIT ((long long)1 << 53)

/* -- the senders ------------------------------------------------------------------------------ */

static int
ct_done(PyObject *result)
{
    if (result == NULL)
        return -1;
    Py_DECREF(result);
    return 0;
}

static int
ct_send_frame(CallOutputCore *self, PyObject *payload, PyObject *marker)
{
    if (self->ob_frame != NULL)
        return ob_send_frame_c(self->ob_frame, payload, marker == Py_True);
    PyObject *args[2] = {payload, marker};
    return ct_done(PyObject_Vectorcall(self->send_frame, args, 2, NULL));
}

static int
ct_send_cn(CallOutputCore *self, PyObject *payload)
{
    if (self->ob_cn != NULL)
        return ob_send_cn_c(self->ob_cn, payload);
    return ct_done(PyObject_CallOneArg(self->send_cn, payload));
}

static int
ct_advance(CallOutputCore *self, long long samples)
{
    if (self->ob_advance != NULL)
        return ob_advance_c(self->ob_advance, (uint32_t)(unsigned long long)samples);
    PyObject *value = PyLong_FromLongLong(samples);
    if (value == NULL)
        return -1;
    int rc = ct_done(PyObject_CallOneArg(self->advance, value));
    Py_DECREF(value);
    return rc;
}

static int
ct_call_method(PyObject *obj, PyObject *name)
{
    return ct_done(PyObject_CallMethodNoArgs(obj, name));
}

/* getattr(obj, name) as a truth value: 0/1, -1 with an exception. */
static int
ct_attr_true(PyObject *obj, PyObject *name)
{
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL)
        return -1;
    int truth = PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

/* -- the tick --------------------------------------------------------------------------------- */

/* The DTMF branch: 1 when it handled the tick, 0 when the playout goes on, -1 on error. */
static int
ct_dtmf(CallOutputCore *self)
{
    int active = ct_attr_true(self->dtmf, ct_str_active);
    if (active < 0)
        return -1;
    if (active) {
        if (ct_call_method(self->queue, ct_str_pause_for_dtmf) < 0)
            return -1;
        PyObject *packet = PyObject_CallMethodNoArgs(self->dtmf, ct_str_next_packet);
        if (packet == NULL)
            return -1;
        if (packet != Py_None && self->send_event != NULL) {
            self->stats[C_EVENTS]++;
            PyObject *args[3] = {NULL, NULL, NULL};
            args[0] = PyObject_GetAttr(packet, ct_str_payload);
            if (args[0] != NULL)
                args[1] = PyObject_GetAttr(packet, ct_str_marker);
            if (args[1] != NULL)
                args[2] = PyObject_GetAttr(packet, ct_str_timestamp_offset);
            int rc = -1;
            if (args[2] != NULL)
                rc = ct_done(PyObject_Vectorcall(self->send_event, args, 3, NULL));
            for (int i = 0; i < 3; i++)
                Py_XDECREF(args[i]);
            Py_DECREF(packet);
            if (rc < 0)
                return -1;
            /* Audio after the event starts a new talkspurt. */
            self->force_marker = 1;
            return 1;
        }
        Py_DECREF(packet);
        /* Between digits: silence keeps the stream alive, audio stays held, and the marker
         * stays pending for the audio that follows. */
        self->stats[C_IDLE]++;
        return ct_send_frame(self, self->silence, Py_False) < 0 ? -1 : 1;
    }
    self->dtmf_busy = 0;
    int paused = ct_attr_true(self->queue, ct_str_paused);
    if (paused < 0)
        return -1;
    if (paused && ct_call_method(self->queue, ct_str_resume_after_dtmf) < 0)
        return -1;
    return 0;
}

/* The frame of a queue that is not the compiled one: queue.next_frame() read as the pure tick
 * reads it. Returns the kind (PQ_*), with new references in *payload and *marker. */
static int
ct_python_frame(CallOutputCore *self, PyObject **payload, PyObject **marker)
{
    *payload = *marker = NULL;
    PyObject *frame = PyObject_CallMethodNoArgs(self->queue, ct_str_next_frame);
    if (frame == NULL)
        return -1;
    if (frame == Py_None) {
        Py_DECREF(frame);
        return PQ_NONE;
    }
    int kind = -1;
    PyObject *kind_obj = PyObject_GetAttr(frame, ct_str_kind);
    if (kind_obj != NULL) {
        kind = kind_obj == pq_frame_kind(PQ_AUDIO)     ? PQ_AUDIO
               : kind_obj == pq_frame_kind(PQ_SILENCE) ? PQ_SILENCE
                                                       : PQ_CN;
        Py_DECREF(kind_obj);
        *payload = PyObject_GetAttr(frame, ct_str_payload);
        *marker = *payload == NULL ? NULL : PyObject_GetAttr(frame, ct_str_marker);
        if (*marker == NULL) {
            Py_CLEAR(*payload);
            kind = -1;
        }
    }
    Py_DECREF(frame);
    return kind;
}

static PyObject *CT_tick(CallOutputCore *self, PyObject *const *args, Py_ssize_t nargs);

/* The tick's work for an initialised core (CT_tick checked its arguments; the clock's C caller,
 * _clock.c, calls it directly for a bound `tick` it recognised with ct_core_of). */
static int
ct_tick_frame(CallOutputCore *self, long long frame_index)
{
    if (self->has_last && frame_index > self->last_frame + 1) {
        /* The clock skipped frames (loop was blocked): timestamps stay locked to time, and the
         * next packet is marked so the peer's jitter buffer resynchronises (RFC 3551 4.1). */
        long long skipped = frame_index - self->last_frame - 1;
        self->stats[C_GAPS] += skipped;
        if (self->advance != NULL && ct_advance(self, skipped * 160) < 0)
            return -1;
        self->force_marker = 1;
    }
    self->last_frame = frame_index;
    self->has_last = 1;

    if (self->dtmf_busy) {
        int handled = ct_dtmf(self);
        if (handled < 0)
            return -1;
        if (handled)
            return 0;
    }

    PyObject *payload = NULL, *marker_obj = NULL;
    int kind, marker = 0;
    if (self->pq != NULL && self->pq->dict == NULL) {
        kind = pq_next(self->pq, &payload, &marker);
        if (kind == PQ_SILENCE)
            payload = Py_NewRef(self->pq->silence_frame);
        else if (kind == PQ_CN)
            payload = Py_NewRef(PyTuple_GET_ITEM(self->pq->cn_playout, 0));
    }
    else {
        kind = ct_python_frame(self, &payload, &marker_obj);
        if (kind > PQ_NONE) {
            marker = PyObject_IsTrue(marker_obj);
            Py_DECREF(marker_obj);
            if (marker < 0)
                kind = -1;
        }
    }
    if (kind < 0) {
        Py_XDECREF(payload);
        return -1;
    }
    int rc = 0;
    if (kind == PQ_NONE) {
        self->stats[C_NOTHING]++;
        if (self->advance != NULL)
            rc = ct_advance(self, 160);
    }
    else if (kind == PQ_AUDIO) {
        self->stats[C_AUDIO]++;
        if (self->force_marker) {
            self->force_marker = 0;
            marker = 1;
        }
        rc = ct_send_frame(self, payload, marker ? Py_True : Py_False);
    }
    else {
        marker = marker || self->force_marker;
        self->force_marker = 0;
        if (kind == PQ_SILENCE) {
            self->stats[C_IDLE]++;
            rc = ct_send_frame(self, payload, marker ? Py_True : Py_False);
        }
        else if (self->send_cn != NULL) { /* comfort noise, and the peer takes RFC 3389 */
            self->stats[C_CN]++;
            rc = ct_send_cn(self, payload);
        }
        else {
            self->stats[C_IDLE]++;
            rc = ct_send_frame(self, self->silence, marker ? Py_True : Py_False);
        }
    }
    Py_XDECREF(payload);
    return rc < 0 ? -1 : 0;
}

static PyObject *
CT_tick(CallOutputCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "tick() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    if (self->queue == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "CallOutput.__init__ was not called");
        return NULL;
    }
    if (!PyLong_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "frame_index must be an int, not %.100s",
                     Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    int overflow = 0;
    long long frame_index = PyLong_AsLongLongAndOverflow(args[0], &overflow);
    if (frame_index == -1 && PyErr_Occurred())
        return NULL;
    if (overflow || frame_index > FRAME_LIMIT || frame_index < -FRAME_LIMIT) {
        PyErr_SetString(PyExc_OverflowError, "frame_index out of range");
        return NULL;
    }
    if (ct_tick_frame(self, frame_index) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* -- the type --------------------------------------------------------------------------------- */

static PyObject *
ct_optional(PyObject *value)
{
    return value == NULL || value == Py_None ? NULL : Py_NewRef(value);
}

static int
CT_init(CallOutputCore *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"queue",   "send_frame",  "send_event", "send_comfort_noise",
                             "advance", "dtmf_sender", NULL};
    PyObject *queue, *send_frame, *send_event = NULL, *send_cn = NULL, *advance = NULL,
                                  *dtmf = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|$OOOO:CallOutput", kwlist, &queue,
                                     &send_frame, &send_event, &send_cn, &advance, &dtmf))
        return -1;
    if (ct_stats_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "CallOutput is not bound (import pacer.py)");
        return -1;
    }
    if (self->queue != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "CallOutput.__init__ may be called once");
        return -1;
    }
    PyObject *silence = PyObject_GetAttr(queue, ct_str_silence_frame);
    if (silence == NULL)
        return -1;
    dtmf = dtmf == NULL || dtmf == Py_None ? PyObject_CallNoArgs(ct_sender_type)
                                           : Py_NewRef(dtmf);
    if (dtmf == NULL) {
        Py_DECREF(silence);
        return -1;
    }
    /* Digits may be under way: only then does the tick ask the sender (pacer.py). */
    int busy = ct_attr_true(dtmf, ct_str_active);
    if (busy < 0) {
        Py_DECREF(silence);
        Py_DECREF(dtmf);
        return -1;
    }
    self->queue = Py_NewRef(queue);
    self->pq = Py_TYPE(queue) == &pq_queue_type ? (PlayoutQueue *)queue : NULL;
    self->silence = silence;
    self->dtmf = dtmf;
    self->send_frame = Py_NewRef(send_frame);
    self->send_event = ct_optional(send_event);
    self->send_cn = ct_optional(send_cn);
    self->advance = ct_optional(advance);
    self->ob_frame = ob_sender_of(self->send_frame, OB_SEND_FRAME);
    self->ob_cn = ob_sender_of(self->send_cn, OB_SEND_CN);
    self->ob_advance = ob_sender_of(self->advance, OB_ADVANCE);
    self->dtmf_busy = (char)busy;
    return 0;
}

static int
CT_traverse(CallOutputCore *self, visitproc visit, void *arg)
{
    Py_VISIT(self->queue);
    Py_VISIT(self->dtmf);
    Py_VISIT(self->send_frame);
    Py_VISIT(self->send_event);
    Py_VISIT(self->send_cn);
    Py_VISIT(self->advance);
    return 0;
}

static int
CT_clear(CallOutputCore *self)
{
    self->pq = NULL;
    self->ob_frame = self->ob_cn = self->ob_advance = NULL;
    Py_CLEAR(self->queue);
    Py_CLEAR(self->dtmf);
    Py_CLEAR(self->silence);
    Py_CLEAR(self->send_frame);
    Py_CLEAR(self->send_event);
    Py_CLEAR(self->send_cn);
    Py_CLEAR(self->advance);
    return 0;
}

/* For a Python subclass (pacer.CallOutput) subtype_dealloc drops the type's reference. */
JB_GC_DEALLOC(CallOutputCore, CT)

static PyObject *
CT_get_stats(CallOutputCore *self, void *closure)
{
    if (self->queue == NULL) { /* __init__ checked that the type is bound */
        PyErr_SetString(PyExc_RuntimeError, "CallOutput.__init__ was not called");
        return NULL;
    }
    return jb_counters(ct_stats_type, self->stats, C_COUNT);
}

JB_FLAG_ATTR(CallOutputCore, CT, dtmf_busy, dtmf_busy)
JB_FLAG_ATTR(CallOutputCore, CT, force_marker, force_marker)

static PyObject *
CT_get_last_frame(CallOutputCore *self, void *closure)
{
    if (!self->has_last)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(self->last_frame);
}

static PyGetSetDef CT_getset[] = {
    {"stats", (getter)CT_get_stats, NULL, "A CallOutputStats of the counters (a new object).",
     NULL},
    {"_dtmf_busy", (getter)CT_get_dtmf_busy, (setter)CT_set_dtmf_busy, NULL, NULL},
    {"_force_marker", (getter)CT_get_force_marker, (setter)CT_set_force_marker, NULL, NULL},
    {"_last_frame", (getter)CT_get_last_frame, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef CT_members[] = {
    {"queue", T_OBJECT, offsetof(CallOutputCore, queue), READONLY, NULL},
    {"dtmf", T_OBJECT, offsetof(CallOutputCore, dtmf), READONLY, NULL},
    {"_silence", T_OBJECT, offsetof(CallOutputCore, silence), READONLY, NULL},
    {"_send_frame", T_OBJECT, offsetof(CallOutputCore, send_frame), READONLY, NULL},
    {"_send_event", T_OBJECT, offsetof(CallOutputCore, send_event), READONLY, NULL},
    {"_send_cn", T_OBJECT, offsetof(CallOutputCore, send_cn), READONLY, NULL},
    {"_advance", T_OBJECT, offsetof(CallOutputCore, advance), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef CT_methods[] = {
    {"tick", (PyCFunction)(void (*)(void))CT_tick, METH_FASTCALL,
     "tick(frame_index, deadline): what this call sends for one 20 ms frame."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ct_type = {
    JB_TYPE_SLOTS(CallOutputCore, CT, "CallOutputCore",
                  "The per-tick core of gateway/media/pacer.py CallOutput, compiled.",
                  Py_TPFLAGS_BASETYPE),
    .tp_methods = CT_methods,
    .tp_members = CT_members,
    .tp_getset = CT_getset,
};

/* -- for the clock's C caller (_clock.c) ------------------------------------------------------ */

PyObject *
ct_core_of(PyObject *callable)
{
    if (!PyCFunction_Check(callable) ||
        PyCFunction_GET_FUNCTION(callable) != (PyCFunction)(void (*)(void))CT_tick)
        return NULL;
    PyObject *core = PyCFunction_GET_SELF(callable);
    if (core == NULL || !PyObject_TypeCheck(core, &ct_type) ||
        ((CallOutputCore *)core)->queue == NULL)
        return NULL;
    return core;
}

int
ct_tick_c(PyObject *core, long long frame_index)
{
    if (frame_index > FRAME_LIMIT || frame_index < -FRAME_LIMIT) {
        PyErr_SetString(PyExc_OverflowError, "frame_index out of range");
        return -1;
    }
    return ct_tick_frame((CallOutputCore *)core, frame_index);
}

/* -- module ----------------------------------------------------------------------------------- */

PyObject *
ct_bind(PyObject *module, PyObject *args)
{
    PyObject *stats, *sender;
    if (!PyArg_ParseTuple(args, "OO:_bind_tick", &stats, &sender))
        return NULL;
    if (!PyCallable_Check(stats) || !PyCallable_Check(sender)) {
        PyErr_SetString(PyExc_TypeError,
                        "_bind_tick needs callables for CallOutputStats, Rfc4733Sender");
        return NULL;
    }
    if (pq_frame_kind(PQ_AUDIO) == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_bind_tick needs _bind_playout first");
        return NULL;
    }
    Py_XSETREF(ct_stats_type, Py_NewRef(stats));
    Py_XSETREF(ct_sender_type, Py_NewRef(sender));
    Py_RETURN_NONE;
}

int
ct_add_type(PyObject *module)
{
    static const JbName names[] = {
        {&ct_str_active, "active"},
        {&ct_str_next_packet, "next_packet"},
        {&ct_str_pause_for_dtmf, "pause_for_dtmf"},
        {&ct_str_resume_after_dtmf, "resume_after_dtmf"},
        {&ct_str_paused, "paused"},
        {&ct_str_next_frame, "next_frame"},
        {&ct_str_payload, "payload"},
        {&ct_str_marker, "marker"},
        {&ct_str_kind, "kind"},
        {&ct_str_timestamp_offset, "timestamp_offset"},
        {&ct_str_silence_frame, "silence_frame"},
    };
    if (jb_intern(names, sizeof(names) / sizeof(names[0])) < 0)
        return -1;
    return jb_add_type(module, &ct_type, "CallOutputCore");
}
