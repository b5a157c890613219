/* gateway.media._jitter, part 5: PlayoutQueue, the compiled twin of gateway/media/playout.py
 * PyPlayoutQueue (issue 14): the whole queue state in one C struct (the chunks in a ring, the
 * talkspurt, hold, CN, pause and overflow state, the counters), so the 20 ms tick of a talking
 * call allocates only the frame's payload. Read the behaviour in playout.py, function by
 * function; tests/media/test_playout_parity.py holds the two to identical frames, reports,
 * statistics and queries after every step.
 *
 * Item states are small objects (pq_item) in a dict keyed by item id, as the pure `_items`; each
 * queued chunk also holds its item's state, so handing out a frame needs no dict lookup.
 * `stats` is read as a new PlayoutStats of the counters (the pure class's object is mutable;
 * nothing outside the queue writes it). The frame for the compiled CallOutput (_tick.c) comes
 * from pq_next without building a PlayoutFrame; `next_frame()` builds one for other callers
 * (idle ones are built once per queue, as the pure class does for silence).
 *
 * Deliberate differences from the pure class, on input only in-process code can construct:
 * item ids given to enqueue/end_of_item must be exactly str (a subclass's __eq__ could run
 * Python code in the middle of a scan of the chunks; queries with another type find nothing), chunks must support the buffer protocol
 * (the pure class's bytes() also takes an int or a list of ints), numbers must be ints within
 * 64 bits; codec, cn_refresh_frames, cn_level and max_queued_bytes cannot be changed after
 * construction (idle_policy and start_delay_frames can).
 *
 * This file is the queue's logic (the methods' bodies); _playout_type.c its Python type and
 * binding; _playout.h what they share. Names: pq_, PQ_ (a method's body). */
#include "_playout.h"


/* Bound by _bind_playout() from playout.py. */
PyObject *pq_frame_type; /* PlayoutFrame */
PyObject *pq_report_type; /* FlushReport */
PyObject *pq_stats_type; /* PlayoutStats */
PyObject *pq_policy[3]; /* IdlePolicy.SILENCE, COMFORT_NOISE, NOTHING */
PyObject *pq_kind[3]; /* FrameKind.AUDIO, SILENCE, COMFORT_NOISE */
PyObject *pq_default_codec; /* g711.PCMU */
long long pq_default_max_queued = 120 * 8000; /* playout.DEFAULT_MAX_QUEUED_BYTES */
long pq_default_cn_level = 70;


PyTypeObject pq_item_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gateway.media._jitter._PlayoutItem",
    .tp_basicsize = sizeof(PqItem),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = NULL,
};


/* -- the ring of chunks ----------------------------------------------------------------------- */

#define PQ_MIN_CAP 8 /* slots: the ring's first size, and the least it shrinks to */

Chunk *
pq_chunk(PlayoutQueue *self, Py_ssize_t i)
{
    return &self->ring[(self->head + i) & (self->cap - 1)];
}

/* The ring moved to `cap` slots (a power of two holding `count`), its chunks in order from 0;
 * -1 (no exception set) when the allocation fails, the ring unchanged. */
static int
pq_resize(PlayoutQueue *self, Py_ssize_t cap)
{
    Chunk *ring = PyMem_Malloc((size_t)cap * sizeof(Chunk));
    if (ring == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < self->count; i++)
        ring[i] = *pq_chunk(self, i);
    PyMem_Free(self->ring);
    self->ring = ring;
    self->cap = cap;
    self->head = 0;
    return 0;
}

static int
pq_push_chunk(PlayoutQueue *self, PyObject *item_id, PqItem *state, PyObject *data)
{
    if (self->count == self->cap && pq_resize(self, self->cap ? self->cap * 2 : PQ_MIN_CAP) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    Chunk *c = pq_chunk(self, self->count);
    c->item_id = Py_NewRef(item_id);
    c->state = (PqItem *)Py_NewRef(state);
    c->data = data; /* the reference is the caller's */
    c->offset = 0;
    self->count++;
    return 0;
}

/* Callers hold no Chunk pointer across this (it may move the ring). */
static void
pq_pop_chunk(PlayoutQueue *self)
{
    Chunk *c = pq_chunk(self, 0);
    PyObject *item_id = c->item_id, *state = (PyObject *)c->state, *data = c->data;
    self->head = (self->head + 1) & (self->cap - 1);
    self->count--;
    /* The ring halves once it is a quarter full: a burst of tiny chunks (a server sending
     * one-byte deltas, up to max_queued_bytes of them) must not keep its peak size for the rest
     * of the call. A failed allocation keeps the larger ring, which still works. */
    if (self->cap > PQ_MIN_CAP && self->count <= self->cap / 4)
        (void)pq_resize(self, self->cap / 2);
    Py_DECREF(item_id);
    Py_DECREF(state);
    Py_DECREF(data);
}

void
pq_clear_chunks(PlayoutQueue *self)
{
    while (self->count)
        pq_pop_chunk(self);
}

static Py_ssize_t
pq_remaining(const Chunk *c)
{
    return PyBytes_GET_SIZE(c->data) - c->offset;
}

/* item_id == id for an item id the queue holds (always an exact str: no Python code runs, so
 * nothing can change the queue during a scan); an object of another type is never equal. */
static int
pq_same_id(PyObject *held, PyObject *item_id)
{
    return held == item_id ||
           (PyUnicode_CheckExact(item_id) && PyUnicode_Compare(held, item_id) == 0);
}

/* 1 when some queued chunk belongs to item_id, else 0. */
static int
pq_has_chunk_of(PlayoutQueue *self, PyObject *item_id)
{
    for (Py_ssize_t i = 0; i < self->count; i++)
        if (pq_same_id(pq_chunk(self, i)->item_id, item_id))
            return 1;
    return 0;
}

/* all(self._items[c.item_id].complete for c in self._chunks) */
static int
pq_all_complete(PlayoutQueue *self)
{
    for (Py_ssize_t i = 0; i < self->count; i++)
        if (!pq_chunk(self, i)->state->complete)
            return 0;
    return 1;
}

static PqItem *
pq_new_item(void)
{
    PqItem *item = PyObject_New(PqItem, &pq_item_type);
    if (item != NULL) {
        item->played = 0;
        item->complete = 0;
    }
    return item;
}

/* self._items.get(item_id): a borrowed reference, NULL when absent (or with an exception). */
static PqItem *
pq_lookup(PlayoutQueue *self, PyObject *item_id)
{
    return (PqItem *)PyDict_GetItemWithError(self->items, item_id);
}

/* -- output ----------------------------------------------------------------------------------- */

/* _take(n): n bytes from the head of the queue (n <= queued), into a new bytes object of
 * `size` bytes padded with the codec's silence. */
static PyObject *
pq_take(PlayoutQueue *self, Py_ssize_t n, Py_ssize_t size)
{
    Chunk *first = pq_chunk(self, 0);
    if (pq_remaining(first) > n && n == size) {
        /* The common talking tick: the frame lies inside one chunk. */
        PyObject *payload =
            PyBytes_FromStringAndSize(PyBytes_AS_STRING(first->data) + first->offset, n);
        if (payload == NULL)
            return NULL;
        first->offset += n;
        self->queued -= n;
        first->state->played += n;
        Py_XSETREF(self->last_item, Py_NewRef(first->item_id));
        return payload;
    }
    PyObject *payload = PyBytes_FromStringAndSize(NULL, size);
    if (payload == NULL)
        return NULL;
    char *out = PyBytes_AS_STRING(payload);
    Py_ssize_t at = 0;
    while (n) {
        Chunk *c = pq_chunk(self, 0);
        Py_ssize_t take = pq_remaining(c);
        if (take > n)
            take = n;
        memcpy(out + at, PyBytes_AS_STRING(c->data) + c->offset, (size_t)take);
        at += take;
        c->offset += take;
        n -= take;
        self->queued -= take;
        c->state->played += take;
        /* A frame spanning two items is reported under the newer one (playout.py _take). */
        Py_XSETREF(self->last_item, Py_NewRef(c->item_id));
        if (c->offset == PyBytes_GET_SIZE(c->data))
            pq_pop_chunk(self);
    }
    if (at < size)
        memset(out + at, self->silence, (size_t)(size - at));
    return payload;
}

/* _held(): a new talkspurt waits start_delay_frames ticks (unless what it has is complete). */
static int
pq_held(PlayoutQueue *self)
{
    if (self->in_talkspurt || !self->start_delay || !self->queued) {
        self->held_ticks = 0;
        return 0;
    }
    if (self->held_ticks >= self->start_delay || pq_all_complete(self)) {
        self->held_ticks = 0;
        return 0;
    }
    self->held_ticks++;
    return 1;
}

/* _idle_frame(): the kind of the idle frame (PQ_NONE: send nothing). */
static int
pq_idle(PlayoutQueue *self)
{
    int was_talking = self->in_talkspurt;
    self->in_talkspurt = 0;
    if (self->policy == 0) {
        self->stats[S_IDLE]++;
        return PQ_SILENCE;
    }
    if (self->policy == 1) {
        /* CN right at the end of a talkspurt, then every cn_refresh_frames ticks. */
        int send = was_talking || self->idle_ticks % self->cn_refresh == 0;
        self->idle_ticks++;
        if (send) {
            self->stats[S_IDLE]++;
            return PQ_CN;
        }
    }
    return PQ_NONE;
}

int
pq_next(PlayoutQueue *self, PyObject **payload, int *marker)
{
    *payload = NULL;
    *marker = 0;
    if (!self->queued) {
        if (!self->paused)
            self->held_ticks = 0;
        return pq_idle(self);
    }
    if (!self->paused && pq_held(self)) {
        self->stats[S_HELD]++;
        return pq_idle(self);
    }
    if (!self->paused) {
        int padded = 0;
        PyObject *frame = NULL;
        if (self->queued >= PQ_FRAME_BYTES)
            frame = pq_take(self, PQ_FRAME_BYTES, PQ_FRAME_BYTES);
        else if (pq_all_complete(self)) {
            frame = pq_take(self, self->queued, PQ_FRAME_BYTES);
            padded = 1;
        }
        else
            goto underrun;
        if (frame == NULL)
            return -1;
        *marker = !self->in_talkspurt;
        self->in_talkspurt = 1;
        self->idle_ticks = 0;
        Py_XSETREF(self->playing, Py_NewRef(self->last_item));
        self->stats[S_AUDIO]++;
        if (padded)
            self->stats[S_PADDED]++;
        *payload = frame;
        return PQ_AUDIO;
    underrun:
        self->stats[S_UNDERRUNS]++;
    }
    return pq_idle(self);
}

PyObject *
PQ_next_frame(PlayoutQueue *self, PyObject *unused)
{
    PyObject *payload;
    int marker;
    int kind = pq_next(self, &payload, &marker);
    if (kind < 0)
        return NULL;
    if (kind == PQ_AUDIO) {
        PyObject *items[4] = {payload, marker ? Py_True : Py_False, self->last_item, pq_kind[0]};
        PyObject *frame = jb_make_tuple((PyTypeObject *)pq_frame_type, items, 4);
        Py_DECREF(payload);
        return frame;
    }
    if (kind == PQ_SILENCE)
        return Py_NewRef(self->silence_playout);
    if (kind == PQ_CN)
        return Py_NewRef(self->cn_playout);
    Py_RETURN_NONE;
}

/* -- input ------------------------------------------------------------------------------------ */

static int
pq_check_item_id(PyObject *item_id, int nonempty)
{
    if (!PyUnicode_CheckExact(item_id)) {
        PyErr_Format(PyExc_TypeError, "item_id must be a str, not %.100s",
                     Py_TYPE(item_id)->tp_name);
        return -1;
    }
    if (nonempty && PyUnicode_GET_LENGTH(item_id) == 0) {
        PyErr_SetString(PyExc_ValueError, "enqueue needs a non-empty item_id");
        return -1;
    }
    return 0;
}

/* self._items[item_id], created when absent: a borrowed reference. */
static PqItem *
pq_state(PlayoutQueue *self, PyObject *item_id)
{
    PqItem *state = pq_lookup(self, item_id);
    if (state != NULL || PyErr_Occurred())
        return state;
    state = pq_new_item();
    if (state == NULL)
        return NULL;
    int rc = PyDict_SetItem(self->items, item_id, (PyObject *)state);
    Py_DECREF(state); /* the dict holds it */
    return rc < 0 ? NULL : state;
}

PyObject *
PQ_enqueue(PlayoutQueue *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "enqueue() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *item_id = args[0], *chunk = args[1];
    if (pq_check_item_id(item_id, 1) < 0)
        return NULL;
    Py_ssize_t size;
    PyObject *data;
    if (PyBytes_CheckExact(chunk)) {
        size = PyBytes_GET_SIZE(chunk);
        data = Py_NewRef(chunk);
    }
    else {
        if (!PyObject_CheckBuffer(chunk)) {
            PyErr_Format(PyExc_TypeError, "a playout chunk must be bytes-like, not %.100s",
                         Py_TYPE(chunk)->tp_name);
            return NULL;
        }
        data = PyBytes_FromObject(chunk); /* bytes(g711) */
        if (data == NULL)
            return NULL;
        size = PyBytes_GET_SIZE(data);
    }
    int overflowed = 0;
    if (self->overflowed != NULL && PySet_GET_SIZE(self->overflowed)) {
        overflowed = PySet_Contains(self->overflowed, item_id);
        if (overflowed < 0)
            goto error;
    }
    if (overflowed || self->queued + (long long)size > self->max_queued) {
        if (!overflowed) {
            if (self->overflowed == NULL && (self->overflowed = PySet_New(NULL)) == NULL)
                goto error;
            if (PySet_Add(self->overflowed, item_id) < 0)
                goto error;
            self->stats[S_OVERFLOW_ITEMS]++;
        }
        self->stats[S_OVERFLOW_BYTES] += size;
        Py_DECREF(data);
        Py_RETURN_FALSE;
    }
    PqItem *state = pq_state(self, item_id);
    if (state == NULL)
        goto error;
    /* Audio after the item's end reopens it rather than losing audio (playout.py enqueue). */
    state->complete = 0;
    if (size) {
        if (pq_push_chunk(self, item_id, state, data) < 0)
            goto error;
        self->queued += size;
    }
    else
        Py_DECREF(data);
    Py_RETURN_TRUE;
error:
    Py_DECREF(data);
    return NULL;
}

PyObject *
PQ_end_of_item(PlayoutQueue *self, PyObject *item_id)
{
    if (pq_check_item_id(item_id, 0) < 0)
        return NULL;
    PqItem *state = pq_state(self, item_id);
    if (state == NULL)
        return NULL;
    state->complete = 1;
    Py_RETURN_NONE;
}

PyObject *
PQ_end_of_response(PlayoutQueue *self, PyObject *unused)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(self->items, &pos, &key, &value))
        ((PqItem *)value)->complete = 1;
    Py_RETURN_NONE;
}

/* -- queries ---------------------------------------------------------------------------------- */

PyObject *
PQ_played_bytes(PlayoutQueue *self, PyObject *item_id)
{
    PqItem *state = pq_lookup(self, item_id);
    if (state == NULL && PyErr_Occurred())
        return NULL;
    return PyLong_FromLongLong(state ? state->played : 0);
}

PyObject *
PQ_is_complete(PlayoutQueue *self, PyObject *item_id)
{
    PqItem *state = pq_lookup(self, item_id);
    if (state == NULL && PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(state != NULL && state->complete);
}

PyObject *
PQ_pending_items(PlayoutQueue *self, PyObject *unused)
{
    PyObject *items = PyList_New(0), *seen = PySet_New(NULL);
    if (items == NULL || seen == NULL)
        goto error;
    PyObject *playing = self->playing;
    if (playing != NULL) {
        PqItem *state = pq_lookup(self, playing);
        if (state == NULL && PyErr_Occurred())
            goto error;
        int done = state != NULL && state->complete;
        if (done) {
            int queued = pq_has_chunk_of(self, playing);
            if (queued < 0)
                goto error;
            done = !queued;
        }
        if (!done && (PyList_Append(items, playing) < 0 || PySet_Add(seen, playing) < 0))
            goto error;
    }
    for (Py_ssize_t i = 0; i < self->count; i++) {
        PyObject *item_id = pq_chunk(self, i)->item_id;
        int known = PySet_Contains(seen, item_id);
        if (known < 0)
            goto error;
        if (!known && (PyList_Append(items, item_id) < 0 || PySet_Add(seen, item_id) < 0))
            goto error;
    }
    Py_DECREF(seen);
    return items;
error:
    Py_XDECREF(items);
    Py_XDECREF(seen);
    return NULL;
}

PyObject *
PQ_forget(PlayoutQueue *self, PyObject *item_id)
{
    if (!PyUnicode_CheckExact(item_id))
        Py_RETURN_NONE; /* the queue holds exact str ids only: another type names nothing */
    int queued = pq_has_chunk_of(self, item_id);
    if (queued < 0)
        return NULL;
    if (queued)
        Py_RETURN_NONE;
    PqItem *state = pq_lookup(self, item_id);
    if (state == NULL && PyErr_Occurred())
        return NULL;
    if (state != NULL && PyDict_DelItem(self->items, item_id) < 0)
        return NULL;
    if (self->overflowed != NULL && PySet_Discard(self->overflowed, item_id) < 0)
        return NULL;
    if (self->playing != NULL) {
        if (pq_same_id(self->playing, item_id))
            Py_CLEAR(self->playing);
    }
    Py_RETURN_NONE;
}

/* -- control ---------------------------------------------------------------------------------- */

PyObject *
PQ_flush(PlayoutQueue *self, PyObject *unused)
{
    PyObject *dropped = PyDict_New();
    if (dropped == NULL)
        return NULL;
    long long total = 0;
    for (Py_ssize_t i = 0; i < self->count; i++) {
        Chunk *c = pq_chunk(self, i);
        PyObject *old = PyDict_GetItemWithError(dropped, c->item_id);
        if (old == NULL && PyErr_Occurred())
            goto error;
        long long sum = pq_remaining(c) + (old ? PyLong_AsLongLong(old) : 0);
        PyObject *value = PyLong_FromLongLong(sum);
        if (value == NULL || PyDict_SetItem(dropped, c->item_id, value) < 0) {
            Py_XDECREF(value);
            goto error;
        }
        Py_DECREF(value);
        total += pq_remaining(c);
    }
    pq_clear_chunks(self);
    self->queued = 0;
    if (self->overflowed != NULL && PySet_Clear(self->overflowed) < 0)
        goto error;
    self->stats[S_FLUSHES]++;
    self->stats[S_DROPPED] += total;
    PyObject *playing = self->playing ? self->playing : Py_None;
    long long played = 0;
    if (self->playing != NULL) {
        PqItem *state = pq_lookup(self, playing);
        if (state == NULL && PyErr_Occurred())
            goto error;
        played = state ? state->played : 0;
    }
    PyObject *played_obj = PyLong_FromLongLong(played);
    if (played_obj == NULL)
        goto error;
    PyObject *report =
        PyObject_CallFunctionObjArgs(pq_report_type, dropped, playing, played_obj, NULL);
    Py_DECREF(played_obj);
    Py_DECREF(dropped);
    /* The next audio after a barge-in is a new talkspurt. */
    self->in_talkspurt = 0;
    return report;
error:
    Py_DECREF(dropped);
    return NULL;
}

PyObject *
PQ_drop_oldest(PlayoutQueue *self, PyObject *arg)
{
    if (!PyLong_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "drop_oldest needs an int, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    int overflow = 0;
    long long nbytes = PyLong_AsLongLongAndOverflow(arg, &overflow);
    if (nbytes == -1 && PyErr_Occurred())
        return NULL;
    if (overflow)
        nbytes = overflow > 0 ? LLONG_MAX : LLONG_MIN;
    long long dropped = 0;
    while (self->count && dropped < nbytes) {
        Chunk *c = pq_chunk(self, 0);
        long long take = pq_remaining(c);
        if (take > nbytes - dropped)
            take = nbytes - dropped;
        c->offset += (Py_ssize_t)take;
        dropped += take;
        if (pq_remaining(c) == 0)
            pq_pop_chunk(self);
    }
    self->queued -= dropped;
    self->stats[S_DROPPED] += dropped;
    return PyLong_FromLongLong(dropped);
}

PyObject *
PQ_pause_for_dtmf(PlayoutQueue *self, PyObject *unused)
{
    self->paused = 1;
    Py_RETURN_NONE;
}

PyObject *
PQ_resume_after_dtmf(PlayoutQueue *self, PyObject *unused)
{
    self->paused = 0;
    Py_RETURN_NONE;
}

