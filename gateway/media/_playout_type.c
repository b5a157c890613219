/* gateway.media._jitter, part 5b: the Python type of the compiled PlayoutQueue (_playout.c has
 * the queue's logic and the rules it keeps): construction, the attributes, the method table and
 * the binding to playout.py. Names: pq_, PQ_. */
#include "_playout.h"
#include <stddef.h>

/* -- construction ----------------------------------------------------------------------------- */

static int
pq_int_arg(PyObject *value, const char *name, long long *out)
{
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", name,
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    int overflow = 0;
    *out = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (*out == -1 && PyErr_Occurred())
        return -1;
    if (overflow) {
        PyErr_Format(PyExc_OverflowError, "%s out of range", name);
        return -1;
    }
    return 0;
}

/* The index of an IdlePolicy member; by value when it is another copy of the enum (a second
 * import of playout.py, as bench/playout_ab.py makes of another revision, rebinds this
 * module to its own classes). */
static int
pq_policy_index(PyObject *policy)
{
    for (int i = 0; i < 3; i++)
        if (policy == pq_policy[i])
            return i;
    PyObject *value = PyObject_GetAttrString(policy, "value");
    if (value == NULL)
        PyErr_Clear();
    for (int i = 0; value != NULL && i < 3; i++) {
        PyObject *bound = PyObject_GetAttrString(pq_policy[i], "value");
        int eq = bound == NULL ? -1 : PyObject_RichCompareBool(value, bound, Py_EQ);
        Py_XDECREF(bound);
        if (eq != 0) {
            Py_DECREF(value);
            return eq < 0 ? -1 : i;
        }
    }
    Py_XDECREF(value);
    PyErr_Format(PyExc_TypeError, "idle_policy must be an IdlePolicy, not %.100s",
                 Py_TYPE(policy)->tp_name);
    return -1;
}

static PyObject *
pq_playout(PyObject *payload, PyObject *kind)
{
    PyObject *items[4] = {payload, Py_False, Py_None, kind};
    return jb_make_tuple((PyTypeObject *)pq_frame_type, items, 4);
}

static int
PQ_init(PlayoutQueue *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"codec", "idle_policy", "cn_refresh_frames", "cn_level",
                             "max_queued_bytes", "start_delay_frames", "stats", NULL};
    PyObject *codec = pq_default_codec, *policy = pq_policy[0], *refresh = NULL, *level = NULL,
             *max_queued = NULL, *delay = NULL, *stats = NULL;
    if (pq_frame_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "PlayoutQueue is not bound (import playout.py)");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OOOOOOO:PlayoutQueue", kwlist, &codec,
                                     &policy, &refresh, &level, &max_queued, &delay, &stats))
        return -1;
    if (self->items != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "PlayoutQueue.__init__ may be called once");
        return -1;
    }
    long long cn_refresh = 10, cn_level = pq_default_cn_level, max_bytes = pq_default_max_queued,
              start_delay = 0;
    int index = pq_policy_index(policy);
    if (index < 0 || (refresh && pq_int_arg(refresh, "cn_refresh_frames", &cn_refresh) < 0) ||
        (level && pq_int_arg(level, "cn_level", &cn_level) < 0) ||
        (max_queued && pq_int_arg(max_queued, "max_queued_bytes", &max_bytes) < 0) ||
        (delay && pq_int_arg(delay, "start_delay_frames", &start_delay) < 0))
        return -1;
    if (cn_refresh < 1) {
        PyErr_Format(PyExc_ValueError, "cn_refresh_frames must be >= 1, got %lld", cn_refresh);
        return -1;
    }
    if (cn_level < 0 || cn_level > 127) {
        PyErr_Format(PyExc_ValueError, "cn_level must be 0..127 (-dBov), got %lld", cn_level);
        return -1;
    }
    if (max_bytes < PQ_FRAME_BYTES) {
        PyErr_Format(PyExc_ValueError, "max_queued_bytes must be >= %d, got %lld",
                     PQ_FRAME_BYTES, max_bytes);
        return -1;
    }
    if (jb_lookup_silence(codec, &self->silence) < 0)
        return -1;
    if (stats != NULL && stats != Py_None) {
        /* A PlayoutStats to start from (the pure dataclass's `stats` field). */
        static const char *const names[S_COUNT] = {
            "audio_frames", "idle_frames", "underruns", "held_frames", "padded_frames",
            "flushes", "dropped_bytes", "overflow_bytes", "overflow_items"};
        for (int i = 0; i < S_COUNT; i++) {
            PyObject *value = PyObject_GetAttrString(stats, names[i]);
            long long v;
            int rc = value == NULL ? -1 : pq_int_arg(value, names[i], &v);
            Py_XDECREF(value);
            if (rc < 0)
                return -1;
            self->stats[i] = v;
        }
    }
    unsigned char level_byte = (unsigned char)cn_level;
    PyObject *silence_frame = PyBytes_FromStringAndSize(NULL, PQ_FRAME_BYTES);
    PyObject *cn_payload = PyBytes_FromStringAndSize((const char *)&level_byte, 1);
    PyObject *items = PyDict_New();
    if (silence_frame == NULL || cn_payload == NULL || items == NULL)
        goto error;
    memset(PyBytes_AS_STRING(silence_frame), self->silence, PQ_FRAME_BYTES);
    self->silence_playout = pq_playout(silence_frame, pq_kind[1]);
    self->cn_playout = pq_playout(cn_payload, pq_kind[2]);
    if (self->silence_playout == NULL || self->cn_playout == NULL)
        goto error;
    self->silence_frame = silence_frame;
    Py_DECREF(cn_payload);
    self->items = items;
    self->codec = Py_NewRef(codec);
    self->policy = index;
    self->cn_refresh = cn_refresh;
    self->cn_level = cn_level;
    self->max_queued = max_bytes;
    self->start_delay = start_delay;
    return 0;
error:
    Py_XDECREF(silence_frame);
    Py_XDECREF(cn_payload);
    Py_XDECREF(items);
    Py_CLEAR(self->silence_playout);
    Py_CLEAR(self->cn_playout);
    return -1;
}

static int
PQ_traverse(PlayoutQueue *self, visitproc visit, void *arg)
{
    Py_VISIT(self->items);
    Py_VISIT(self->overflowed);
    Py_VISIT(self->codec);
    Py_VISIT(self->dict);
    for (Py_ssize_t i = 0; i < self->count; i++)
        Py_VISIT(pq_chunk(self, i)->item_id);
    return 0;
}

static int
PQ_clear(PlayoutQueue *self)
{
    pq_clear_chunks(self);
    self->queued = 0;
    Py_CLEAR(self->items);
    Py_CLEAR(self->overflowed);
    Py_CLEAR(self->codec);
    Py_CLEAR(self->playing);
    Py_CLEAR(self->last_item);
    Py_CLEAR(self->silence_frame);
    Py_CLEAR(self->silence_playout);
    Py_CLEAR(self->cn_playout);
    Py_CLEAR(self->dict);
    return 0;
}

static void
PQ_dealloc(PlayoutQueue *self)
{
    PyObject_GC_UnTrack(self);
    PQ_clear(self);
    PyMem_Free(self->ring);
    self->ring = NULL;
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
pq_ready(PlayoutQueue *self)
{
    if (self->items == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "PlayoutQueue.__init__ was not called");
        return -1;
    }
    return 0;
}

/* Every method needs __init__ to have run: wrap them once here. */
#define PQ_READY_O(name)                                                                       \
    static PyObject *PQr_##name(PlayoutQueue *self, PyObject *arg)                              \
    {                                                                                          \
        return pq_ready(self) < 0 ? NULL : PQ_##name(self, arg);                               \
    }
PQ_READY_O(next_frame)
PQ_READY_O(end_of_item)
PQ_READY_O(end_of_response)
PQ_READY_O(played_bytes)
PQ_READY_O(is_complete)
PQ_READY_O(pending_items)
PQ_READY_O(forget)
PQ_READY_O(flush)
PQ_READY_O(drop_oldest)
PQ_READY_O(pause_for_dtmf)
PQ_READY_O(resume_after_dtmf)

static PyObject *
PQr_enqueue(PlayoutQueue *self, PyObject *const *args, Py_ssize_t nargs)
{
    return pq_ready(self) < 0 ? NULL : PQ_enqueue(self, args, nargs);
}

/* -- attributes ------------------------------------------------------------------------------- */

static PyObject *
PQ_get_stats(PlayoutQueue *self, void *closure)
{
    if (pq_ready(self) < 0) /* __init__ checked that the type is bound */
        return NULL;
    return jb_counters(pq_stats_type, self->stats, S_COUNT);
}

static PyObject *
PQ_get_completed_items(PlayoutQueue *self, void *closure)
{
    if (pq_ready(self) < 0)
        return NULL;
    PyObject *done = PyList_New(0);
    if (done == NULL)
        return NULL;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(self->items, &pos, &key, &value)) {
        if (((PqItem *)value)->complete && PyList_Append(done, key) < 0) {
            Py_DECREF(done);
            return NULL;
        }
    }
    PyObject *items = PyFrozenSet_New(done);
    Py_DECREF(done);
    return items;
}

#define PQ_GET(name, expr)                                                                     \
    static PyObject *PQ_get_##name(PlayoutQueue *self, void *closure)                          \
    {                                                                                          \
        if (pq_ready(self) < 0)                                                                \
            return NULL;                                                                       \
        return expr;                                                                           \
    }
PQ_GET(silence_frame, Py_NewRef(self->silence_frame))
PQ_GET(queued_bytes, PyLong_FromLongLong(self->queued))
PQ_GET(paused, PyBool_FromLong(self->paused))
PQ_GET(codec, Py_NewRef(self->codec))
PQ_GET(idle_policy, Py_NewRef(pq_policy[self->policy]))
PQ_GET(cn_refresh_frames, PyLong_FromLongLong(self->cn_refresh))
PQ_GET(cn_level, PyLong_FromLongLong(self->cn_level))
PQ_GET(max_queued_bytes, PyLong_FromLongLong(self->max_queued))
PQ_GET(start_delay_frames, PyLong_FromLongLong(self->start_delay))

static int
PQ_set_start_delay_frames(PlayoutQueue *self, PyObject *value, void *closure)
{
    long long v;
    if (value == NULL) {
        PyErr_SetString(PyExc_TypeError, "cannot delete start_delay_frames");
        return -1;
    }
    if (pq_int_arg(value, "start_delay_frames", &v) < 0)
        return -1;
    self->start_delay = v;
    return 0;
}

static int
PQ_set_idle_policy(PlayoutQueue *self, PyObject *value, void *closure)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_TypeError, "cannot delete idle_policy");
        return -1;
    }
    if (pq_ready(self) < 0) /* the policies are bound by then */
        return -1;
    int index = pq_policy_index(value);
    if (index < 0)
        return -1;
    self->policy = index;
    return 0;
}

static PyGetSetDef PQ_getset[] = {
    {"stats", (getter)PQ_get_stats, NULL, "A PlayoutStats of the counters (a new object).", NULL},
    {"completed_items", (getter)PQ_get_completed_items, NULL, NULL, NULL},
    {"silence_frame", (getter)PQ_get_silence_frame, NULL, NULL, NULL},
    {"queued_bytes", (getter)PQ_get_queued_bytes, NULL, NULL, NULL},
    {"paused", (getter)PQ_get_paused, NULL, NULL, NULL},
    {"codec", (getter)PQ_get_codec, NULL, NULL, NULL},
    {"idle_policy", (getter)PQ_get_idle_policy, (setter)PQ_set_idle_policy, NULL, NULL},
    {"cn_refresh_frames", (getter)PQ_get_cn_refresh_frames, NULL, NULL, NULL},
    {"cn_level", (getter)PQ_get_cn_level, NULL, NULL, NULL},
    {"max_queued_bytes", (getter)PQ_get_max_queued_bytes, NULL, NULL, NULL},
    {"start_delay_frames", (getter)PQ_get_start_delay_frames,
     (setter)PQ_set_start_delay_frames, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef PQ_methods[] = {
    {"enqueue", (PyCFunction)(void (*)(void))PQr_enqueue, METH_FASTCALL,
     "enqueue(item_id, g711) -> bool: False when the bound dropped the chunk."},
    {"end_of_item", (PyCFunction)PQr_end_of_item, METH_O, NULL},
    {"end_of_response", (PyCFunction)PQr_end_of_response, METH_NOARGS, NULL},
    {"played_bytes", (PyCFunction)PQr_played_bytes, METH_O, NULL},
    {"is_complete", (PyCFunction)PQr_is_complete, METH_O, NULL},
    {"pending_items", (PyCFunction)PQr_pending_items, METH_NOARGS, NULL},
    {"forget", (PyCFunction)PQr_forget, METH_O, NULL},
    {"flush", (PyCFunction)PQr_flush, METH_NOARGS, NULL},
    {"drop_oldest", (PyCFunction)PQr_drop_oldest, METH_O, NULL},
    {"pause_for_dtmf", (PyCFunction)PQr_pause_for_dtmf, METH_NOARGS, NULL},
    {"resume_after_dtmf", (PyCFunction)PQr_resume_after_dtmf, METH_NOARGS, NULL},
    {"next_frame", (PyCFunction)PQr_next_frame, METH_NOARGS,
     "next_frame() -> PlayoutFrame | None: the frame to send this tick."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject pq_queue_type = {
    JB_TYPE_SLOTS(PlayoutQueue, PQ, "PlayoutQueue",
                  "The playout queue of gateway/media/playout.py, compiled.",
                  0),
    .tp_methods = PQ_methods,
    .tp_getset = PQ_getset,
    .tp_dictoffset = offsetof(PlayoutQueue, dict),
};

/* -- module ----------------------------------------------------------------------------------- */

PyObject *
pq_bind(PyObject *module, PyObject *args)
{
    PyObject *frame, *report, *stats, *policies, *kinds, *codec;
    long long max_queued;
    long cn_level;
    if (!PyArg_ParseTuple(args, "O!OOOOOLl:_bind_playout", &PyType_Type, &frame, &report, &stats,
                          &policies, &kinds, &codec, &max_queued, &cn_level))
        return NULL;
    if (jb_check_named_tuple((PyTypeObject *)frame, "_bind_playout", "PlayoutFrame") < 0)
        return NULL;
    PyObject *p = PySequence_Tuple(policies), *k = PySequence_Tuple(kinds);
    if (p == NULL || k == NULL || PyTuple_GET_SIZE(p) != 3 || PyTuple_GET_SIZE(k) != 3) {
        Py_XDECREF(p);
        Py_XDECREF(k);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError,
                            "_bind_playout needs the three IdlePolicy and FrameKind members");
        return NULL;
    }
    for (int i = 0; i < 3; i++) {
        Py_XSETREF(pq_policy[i], Py_NewRef(PyTuple_GET_ITEM(p, i)));
        Py_XSETREF(pq_kind[i], Py_NewRef(PyTuple_GET_ITEM(k, i)));
    }
    Py_DECREF(p);
    Py_DECREF(k);
    Py_XSETREF(pq_frame_type, Py_NewRef(frame));
    Py_XSETREF(pq_report_type, Py_NewRef(report));
    Py_XSETREF(pq_stats_type, Py_NewRef(stats));
    Py_XSETREF(pq_default_codec, Py_NewRef(codec));
    pq_default_max_queued = max_queued;
    pq_default_cn_level = cn_level;
    Py_RETURN_NONE;
}

PyObject *
pq_frame_kind(int kind)
{
    return pq_kind[kind == PQ_AUDIO ? 0 : kind == PQ_SILENCE ? 1 : 2];
}

int
pq_add_type(PyObject *module)
{
    if (PyType_Ready(&pq_item_type) < 0)
        return -1;
    return jb_add_type(module, &pq_queue_type, "PlayoutQueue");
}
