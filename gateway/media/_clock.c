/* gateway.media._jitter, part 7: the media clock's slot wakeup, compiled (issue 14).
 *
 * Per call per 20 ms the pure path runs four Python frames (MediaClock._fire's member loop,
 * RtpStream._on_clock, RtpStream.tick, CallSession.on_output_tick) that in the common case
 * find nothing to do. Here one C call per slot wakeup (run_slot) runs every member; for a
 * member that is an RtpStream built on StreamTickCore it does what _on_clock + tick +
 * CallOutput.tick do without a Python frame, and calls into Python only when there is Python
 * work:
 * - frames the jitter buffer released at the tick -> stream._release(frames) (on_audio);
 * - an RFC 4733 end event open whose deadline passed -> stream._dtmf_due(now);
 * - the inactivity timeout reached -> stream._timeout_due();
 * - an RTCP report due -> stream._rtcp_due(now) (which schedules the next);
 * - the session's per-tick hook (after_tick) only when its TickWatch says the hook has work
 *   (playout just drained, hold fill due, gathering on); without a watch, every tick;
 * - an output tick that is not the compiled CallOutputCore, a jitter buffer that is not the
 *   compiled one, a member that is not a StreamTickCore: called through Python as now.
 * Read the behaviour in the pure twins, line by line: stream.py PyStreamTick, pacer.py
 * PyTickWatch and _py_run_slot. tests/media/test_clock_parity.py holds the two to the same
 * calls in the same order and the same statistics.
 *
 * State has one owner: the stream's tick state (jitter, output_tick, after_tick, tick_watch,
 * _time, _activity_since, _next_rtcp, _dtmf_deadline, _inactivity_timeout, _timed_out,
 * _expect_media, _closed) lives in the StreamTickCore fields, which RtpStream (a subclass)
 * reads and writes as attributes; the session's numbers (playout_nonempty, audio_t0,
 * audio_samples) live in its TickWatch, which the session writes where they change.
 * Names: sc_ (StreamTickCore ST_, TickWatch TW_). */
#include "_playout.h"
#include <structmember.h>

static PyObject *sc_str_release, *sc_str_dtmf_due, *sc_str_timeout_due, *sc_str_rtcp_due,
    *sc_str_pop_ready, *sc_str_active, *sc_str_tick, *sc_str_queued_bytes, *sc_str_ticks,
    *sc_str_has_work;

static int
sc_done(PyObject *result)
{
    if (result == NULL)
        return -1;
    Py_DECREF(result);
    return 0;
}

/* -- TickWatch: when the session's per-tick hook has work ---------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *queue;
    double audio_t0, fill_after, rate;
    long long audio_samples, frame_bytes;
    char has_t0, playout_nonempty, always;
} TickWatch;

static PyTypeObject tw_type;

static int
TW_init(TickWatch *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"queue", "fill_after_s", "sample_rate", "frame_bytes", NULL};
    PyObject *queue;
    double fill_after, rate;
    long long frame_bytes;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O$ddL:TickWatch", kwlist, &queue,
                                     &fill_after, &rate, &frame_bytes))
        return -1;
    Py_XSETREF(self->queue, Py_NewRef(queue));
    self->fill_after = fill_after;
    self->rate = rate;
    self->frame_bytes = frame_bytes;
    return 0;
}

static int
TW_traverse(TickWatch *self, visitproc visit, void *arg)
{
    Py_VISIT(self->queue);
    return 0;
}

static int
TW_clear(TickWatch *self)
{
    Py_CLEAR(self->queue);
    return 0;
}

JB_GC_DEALLOC(TickWatch, TW)

/* 1 when the hook has work this tick, 0 when not, -1 with an exception. `time_fn` is the
 * stream's loop.time (None: no loop, the hook decides). PyTickWatch.has_work, line by line. */
static int
tw_has_work(TickWatch *self, PyObject *time_fn)
{
    if (self->always)
        return 1;
    if (self->queue == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "TickWatch.__init__ was not called");
        return -1;
    }
    if (self->playout_nonempty) {
        PyObject *queue = self->queue;
        if (Py_TYPE(queue) == &pq_queue_type && ((PlayoutQueue *)queue)->dict == NULL) {
            if (((PlayoutQueue *)queue)->queued == 0)
                return 1;
        }
        else {
            Py_INCREF(queue); /* its getattr may run code that replaces watch.queue */
            PyObject *queued = PyObject_GetAttr(queue, sc_str_queued_bytes);
            Py_DECREF(queue);
            if (queued == NULL)
                return -1;
            PyObject *zero = PyLong_FromLong(0);
            int empty = zero == NULL ? -1 : PyObject_RichCompareBool(queued, zero, Py_EQ);
            Py_XDECREF(zero);
            Py_DECREF(queued);
            if (empty != 0)
                return empty;
        }
    }
    if (!self->has_t0)
        return 0;
    if (time_fn == NULL || time_fn == Py_None)
        return 1;
    PyObject *now_obj = PyObject_CallNoArgs(time_fn);
    if (now_obj == NULL)
        return -1;
    double now;
    int rc = jb_as_double(now_obj, "loop.time()", &now);
    Py_DECREF(now_obj);
    if (rc < 0)
        return -1;
    double behind = (now - self->audio_t0 - self->fill_after) * self->rate -
                    (double)self->audio_samples;
    return behind >= (double)self->frame_bytes;
}

static PyObject *
TW_has_work(TickWatch *self, PyObject *time_fn)
{
    int work = tw_has_work(self, time_fn);
    return work < 0 ? NULL : PyBool_FromLong(work);
}

static PyObject *
TW_get_audio_t0(TickWatch *self, void *closure)
{
    if (!self->has_t0)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(self->audio_t0);
}

static int
TW_set_audio_t0(TickWatch *self, PyObject *value, void *closure)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_TypeError, "cannot delete audio_t0");
        return -1;
    }
    if (value == Py_None) {
        self->has_t0 = 0;
        return 0;
    }
    if (jb_as_double(value, "audio_t0", &self->audio_t0) < 0)
        return -1;
    self->has_t0 = 1;
    return 0;
}

static PyObject *
TW_get_audio_samples(TickWatch *self, void *closure)
{
    return PyLong_FromLongLong(self->audio_samples);
}

static int
TW_set_audio_samples(TickWatch *self, PyObject *value, void *closure)
{
    if (value == NULL || !PyLong_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "audio_samples must be an int");
        return -1;
    }
    long long samples = PyLong_AsLongLong(value);
    if (samples == -1 && PyErr_Occurred())
        return -1;
    self->audio_samples = samples;
    return 0;
}

static PyObject *
TW_get_fill_after_s(TickWatch *self, void *closure)
{
    return PyFloat_FromDouble(self->fill_after);
}

JB_FLAG_ATTR(TickWatch, TW, playout_nonempty, playout_nonempty)
JB_FLAG_ATTR(TickWatch, TW, always, always)

static PyGetSetDef TW_getset[] = {
    {"audio_t0", (getter)TW_get_audio_t0, (setter)TW_set_audio_t0, NULL, NULL},
    {"audio_samples", (getter)TW_get_audio_samples, (setter)TW_set_audio_samples, NULL, NULL},
    {"playout_nonempty", (getter)TW_get_playout_nonempty, (setter)TW_set_playout_nonempty, NULL,
     NULL},
    {"always", (getter)TW_get_always, (setter)TW_set_always, NULL, NULL},
    {"fill_after_s", (getter)TW_get_fill_after_s, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef TW_members[] = {
    {"queue", T_OBJECT, offsetof(TickWatch, queue), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef TW_methods[] = {
    {"has_work", (PyCFunction)TW_has_work, METH_O,
     "has_work(time): whether the session's per-tick hook has work this tick."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject tw_type = {
    JB_TYPE_SLOTS(TickWatch, TW, "TickWatch",
                  "What the media clock reads to decide that the session's hook has work.", 0),
    .tp_methods = TW_methods,
    .tp_members = TW_members,
    .tp_getset = TW_getset,
};

/* -- StreamTickCore: one RtpStream's clock callback ---------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *jitter, *output_tick, *after_tick, *tick_watch, *time_fn;
    double activity_since, next_rtcp, dtmf_deadline, inactivity_timeout;
    char timed_out, expect_media, closed;
} StreamTick;

static PyTypeObject st_type;

static int
ST_init(StreamTick *self, PyObject *args, PyObject *kwargs)
{
    return 0; /* RtpStream.__init__ sets every field */
}

static int
ST_traverse(StreamTick *self, visitproc visit, void *arg)
{
    Py_VISIT(self->jitter);
    Py_VISIT(self->output_tick);
    Py_VISIT(self->after_tick);
    Py_VISIT(self->tick_watch);
    Py_VISIT(self->time_fn);
    return 0;
}

static int
ST_clear(StreamTick *self)
{
    Py_CLEAR(self->jitter);
    Py_CLEAR(self->output_tick);
    Py_CLEAR(self->after_tick);
    Py_CLEAR(self->tick_watch);
    Py_CLEAR(self->time_fn);
    return 0;
}

JB_GC_DEALLOC(StreamTick, ST)

static inline int
sc_present(PyObject *obj)
{
    return obj != NULL && obj != Py_None;
}

/* RtpStream.tick(now): PyStreamTick.tick, line by line. */
static int
st_tick(StreamTick *self, double now, PyObject *now_obj)
{
    if (self->closed)
        return 0;
    PyObject *jitter = self->jitter;
    if (jitter == NULL) {
        PyErr_SetString(PyExc_AttributeError, "RtpStream has no jitter buffer");
        return -1;
    }
    Py_INCREF(jitter);
    PyObject *frames;
    if (Py_TYPE(jitter) == &jb_buffer_type && ((JitterBuffer *)jitter)->ready != NULL)
        frames = jb_pop_ready((JitterBuffer *)jitter, now);
    else
        frames = PyObject_CallMethodOneArg(jitter, sc_str_pop_ready, now_obj);
    Py_DECREF(jitter);
    if (frames == NULL)
        return -1;
    int any = PyObject_IsTrue(frames);
    int rc = any;
    if (any > 0)
        rc = sc_done(PyObject_CallMethodOneArg((PyObject *)self, sc_str_release, frames));
    Py_DECREF(frames);
    if (rc < 0)
        return -1;
    if (now >= self->dtmf_deadline &&
        sc_done(PyObject_CallMethodOneArg((PyObject *)self, sc_str_dtmf_due, now_obj)) < 0)
        return -1;
    double timeout = self->inactivity_timeout;
    if (timeout > 0 && self->expect_media && !self->timed_out &&
        now - self->activity_since >= timeout) {
        self->timed_out = 1;
        if (sc_done(PyObject_CallMethodNoArgs((PyObject *)self, sc_str_timeout_due)) < 0)
            return -1;
    }
    if (now >= self->next_rtcp &&
        sc_done(PyObject_CallMethodOneArg((PyObject *)self, sc_str_rtcp_due, now_obj)) < 0)
        return -1;
    return 0;
}

/* The session's hook after the frame went out: when its watch says it has work (or without a
 * watch, every tick). */
static int
st_after(StreamTick *self, PyObject *time_fn)
{
    PyObject *after = self->after_tick;
    if (!sc_present(after))
        return 0;
    Py_INCREF(after);
    int work = 1;
    PyObject *watch = self->tick_watch;
    if (sc_present(watch)) {
        Py_INCREF(watch);
        if (Py_TYPE(watch) == &tw_type)
            work = tw_has_work((TickWatch *)watch, time_fn);
        else {
            PyObject *result = PyObject_CallMethodOneArg(
                watch, sc_str_has_work, time_fn == NULL ? Py_None : time_fn);
            work = result == NULL ? -1 : PyObject_IsTrue(result);
            Py_XDECREF(result);
        }
        Py_DECREF(watch);
    }
    int rc = work;
    if (work > 0)
        rc = sc_done(PyObject_CallNoArgs(after));
    Py_DECREF(after);
    return rc < 0 ? -1 : 0;
}

/* RtpStream._on_clock(frame_index, deadline): PyStreamTick._on_clock, line by line. */
static int
st_clock(StreamTick *self, PyObject *frame_obj, long long frame, PyObject *deadline_obj)
{
    PyObject *time_fn = self->time_fn;
    PyObject *now_obj;
    if (sc_present(time_fn)) {
        Py_INCREF(time_fn);
        now_obj = PyObject_CallNoArgs(time_fn);
        if (now_obj == NULL) {
            Py_DECREF(time_fn);
            return -1;
        }
    }
    else {
        time_fn = NULL;
        now_obj = Py_NewRef(deadline_obj);
    }
    double now;
    int rc = jb_as_double(now_obj, "now", &now);
    if (rc == 0)
        rc = st_tick(self, now, now_obj);
    Py_DECREF(now_obj);
    if (rc == 0) {
        PyObject *out = self->output_tick;
        if (sc_present(out) && !self->closed) {
            /* The call's outbound tick (CallOutput.ride), then the session's hook right after
             * the frame went out. */
            Py_INCREF(out);
            PyObject *core = ct_core_of(out);
            if (core != NULL)
                rc = ct_tick_c(core, frame);
            else {
                PyObject *args[2] = {frame_obj, deadline_obj};
                rc = sc_done(PyObject_Vectorcall(out, args, 2, NULL));
            }
            Py_DECREF(out);
            if (rc == 0)
                rc = st_after(self, time_fn);
        }
    }
    Py_XDECREF(time_fn);
    return rc;
}

static int
sc_frame_arg(PyObject *obj, long long *out)
{
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "frame_index must be an int, not %.100s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    int overflow = 0;
    *out = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (*out == -1 && PyErr_Occurred())
        return -1;
    if (overflow) {
        PyErr_SetString(PyExc_OverflowError, "frame_index out of range");
        return -1;
    }
    return 0;
}

static PyObject *
ST_on_clock(StreamTick *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "_on_clock() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    long long frame;
    if (sc_frame_arg(args[0], &frame) < 0 || st_clock(self, args[0], frame, args[1]) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
ST_tick(StreamTick *self, PyObject *now_obj)
{
    double now;
    if (jb_as_double(now_obj, "now", &now) < 0 || st_tick(self, now, now_obj) < 0)
        return NULL;
    Py_RETURN_NONE;
}

JB_FLAG_ATTR(StreamTick, ST, timed_out, timed_out)
JB_FLAG_ATTR(StreamTick, ST, expect_media, expect_media)
JB_FLAG_ATTR(StreamTick, ST, closed, closed)

static PyGetSetDef ST_getset[] = {
    {"_timed_out", (getter)ST_get_timed_out, (setter)ST_set_timed_out, NULL, NULL},
    {"_expect_media", (getter)ST_get_expect_media, (setter)ST_set_expect_media, NULL, NULL},
    {"_closed", (getter)ST_get_closed, (setter)ST_set_closed, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef ST_members[] = {
    {"jitter", T_OBJECT_EX, offsetof(StreamTick, jitter), 0, "The inbound jitter buffer."},
    {"output_tick", T_OBJECT, offsetof(StreamTick, output_tick), 0, "See CallOutput.ride."},
    {"after_tick", T_OBJECT, offsetof(StreamTick, after_tick), 0, "Runs after output_tick."},
    {"tick_watch", T_OBJECT, offsetof(StreamTick, tick_watch), 0,
     "When after_tick has work (None: every tick)."},
    {"_time", T_OBJECT, offsetof(StreamTick, time_fn), 0, "The loop's time (None: no loop)."},
    {"_activity_since", T_DOUBLE, offsetof(StreamTick, activity_since), 0, NULL},
    {"_next_rtcp", T_DOUBLE, offsetof(StreamTick, next_rtcp), 0, NULL},
    {"_dtmf_deadline", T_DOUBLE, offsetof(StreamTick, dtmf_deadline), 0, NULL},
    {"_inactivity_timeout", T_DOUBLE, offsetof(StreamTick, inactivity_timeout), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef ST_methods[] = {
    {"_on_clock", (PyCFunction)(void (*)(void))ST_on_clock, METH_FASTCALL,
     "_on_clock(frame_index, deadline): the stream's media clock callback."},
    {"tick", (PyCFunction)ST_tick, METH_O,
     "tick(now): release audio, RFC 4733 end timeouts, inactivity, RTCP."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject st_type = {
    JB_TYPE_SLOTS(StreamTick, ST, "StreamTickCore",
                  "The per-tick core of gateway/media/stream.py RtpStream, compiled.",
                  Py_TPFLAGS_BASETYPE),
    .tp_methods = ST_methods,
    .tp_members = ST_members,
    .tp_getset = ST_getset,
};

/* -- run_slot: the member loop of one slot wakeup ------------------------------------------ */

/* The StreamTickCore whose bound _on_clock `tick` is (borrowed), or NULL. */
static StreamTick *
sc_stream_of(PyObject *tick)
{
    if (!PyCFunction_Check(tick) ||
        PyCFunction_GET_FUNCTION(tick) != (PyCFunction)(void (*)(void))ST_on_clock)
        return NULL;
    PyObject *stream = PyCFunction_GET_SELF(tick);
    return stream != NULL && PyObject_TypeCheck(stream, &st_type) ? (StreamTick *)stream : NULL;
}

/* One member's tick; 0, or -1 with the exception set. */
static int
sc_member(PyObject *reg, PyObject *frame_obj, long long frame, PyObject *deadline_obj)
{
    PyObject *tick = PyObject_GetAttr(reg, sc_str_tick);
    if (tick == NULL)
        return -1;
    StreamTick *stream = sc_stream_of(tick);
    int rc;
    if (stream != NULL)
        rc = st_clock(stream, frame_obj, frame, deadline_obj);
    else {
        PyObject *args[2] = {frame_obj, deadline_obj};
        rc = sc_done(PyObject_Vectorcall(tick, args, 2, NULL));
    }
    Py_DECREF(tick);
    return rc;
}

/* An Exception from a member: on_error(index, reg, frame, exc) counts and logs it (pacer.py);
 * anything else (KeyboardInterrupt...) propagates. 0, or -1 with an exception. */
static int
sc_member_failed(PyObject *on_error, PyObject *index, PyObject *reg, PyObject *frame_obj)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception))
        return -1;
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != NULL && value != NULL)
        PyException_SetTraceback(value, traceback);
    PyObject *args[4] = {index, reg, frame_obj, value != NULL ? value : Py_None};
    int rc = sc_done(PyObject_Vectorcall(on_error, args, 4, NULL));
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    return rc;
}

static int
sc_add_ticks(PyObject *stats, long long ticks)
{
    PyObject *old = PyObject_GetAttr(stats, sc_str_ticks);
    if (old == NULL)
        return -1;
    PyObject *delta = PyLong_FromLongLong(ticks);
    PyObject *sum = delta == NULL ? NULL : PyNumber_InPlaceAdd(old, delta);
    Py_DECREF(old);
    Py_XDECREF(delta);
    if (sum == NULL)
        return -1;
    int rc = PyObject_SetAttr(stats, sc_str_ticks, sum);
    Py_DECREF(sum);
    return rc;
}

/* run_slot(members, run_from, stop, first, first_deadline, epoch, period, offset, stats,
 *          on_error, index): pacer.py _py_run_slot, line by line. */
PyObject *
sc_run_slot(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 11) {
        PyErr_Format(PyExc_TypeError, "run_slot() takes 11 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *members = args[0], *first_deadline_obj = args[4], *stats = args[8],
             *on_error = args[9], *index = args[10];
    if (!PyTuple_Check(members)) {
        PyErr_SetString(PyExc_TypeError, "run_slot: members must be a tuple");
        return NULL;
    }
    long long run_from, stop, first;
    double epoch, period, offset;
    if (sc_frame_arg(args[1], &run_from) < 0 || sc_frame_arg(args[2], &stop) < 0 ||
        sc_frame_arg(args[3], &first) < 0 || jb_as_double(args[5], "epoch", &epoch) < 0 ||
        jb_as_double(args[6], "period", &period) < 0 ||
        jb_as_double(args[7], "offset", &offset) < 0)
        return NULL;
    Py_INCREF(members);
    Py_ssize_t n = PyTuple_GET_SIZE(members);
    for (long long frame = run_from; frame < stop; frame++) {
        PyObject *frame_obj = PyLong_FromLongLong(frame);
        PyObject *deadline_obj = frame == first
                                     ? Py_NewRef(first_deadline_obj)
                                     : PyFloat_FromDouble(epoch + (double)frame * period + offset);
        if (frame_obj == NULL || deadline_obj == NULL) {
            Py_XDECREF(frame_obj);
            Py_XDECREF(deadline_obj);
            goto error;
        }
        long long ticks = 0;
        int rc = 0;
        for (Py_ssize_t i = 0; i < n && rc == 0; i++) {
            PyObject *reg = PyTuple_GET_ITEM(members, i);
            PyObject *active_obj = PyObject_GetAttr(reg, sc_str_active);
            if (active_obj == NULL) {
                rc = -1;
                break;
            }
            int active = PyObject_IsTrue(active_obj);
            Py_DECREF(active_obj);
            if (active <= 0) {
                rc = active;
                continue;
            }
            ticks++;
            if (sc_member(reg, frame_obj, frame, deadline_obj) < 0)
                rc = sc_member_failed(on_error, index, reg, frame_obj);
        }
        Py_DECREF(frame_obj);
        Py_DECREF(deadline_obj);
        if (rc < 0 || sc_add_ticks(stats, ticks) < 0)
            goto error;
    }
    Py_DECREF(members);
    Py_RETURN_NONE;
error:
    Py_DECREF(members);
    return NULL;
}

/* -- module ------------------------------------------------------------------------------- */

PyObject *
sc_bind(PyObject *module, PyObject *args)
{
    Py_RETURN_NONE; /* nothing to bind: the names above are interned at import */
}

int
sc_add_types(PyObject *module)
{
    static const JbName names[] = {
        {&sc_str_release, "_release"},         {&sc_str_dtmf_due, "_dtmf_due"},
        {&sc_str_timeout_due, "_timeout_due"}, {&sc_str_rtcp_due, "_rtcp_due"},
        {&sc_str_pop_ready, "pop_ready"},      {&sc_str_active, "active"},
        {&sc_str_tick, "tick"},                {&sc_str_queued_bytes, "queued_bytes"},
        {&sc_str_ticks, "ticks"},              {&sc_str_has_work, "has_work"},
    };
    if (jb_intern(names, sizeof(names) / sizeof(names[0])) < 0)
        return -1;
    if (jb_add_type(module, &tw_type, "TickWatch") < 0)
        return -1;
    return jb_add_type(module, &st_type, "StreamTickCore");
}
