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
 * item ids given to enqueue/end_of_item must be str, chunks must support the buffer protocol
 * (the pure class's bytes() also takes an int or a list of ints), numbers must be ints within
 * 64 bits; codec, cn_refresh_frames, cn_level and max_queued_bytes cannot be changed after
 * construction (idle_policy and start_delay_frames can). Names: pq_. */
#include "_playout.h"

enum {
    S_AUDIO,
    S_IDLE,
    S_UNDERRUNS,
    S_HELD,
    S_PADDED,
    S_FLUSHES,
    S_DROPPED,
    S_OVERFLOW_BYTES,
    S_OVERFLOW_ITEMS,
    S_COUNT /* the fields of playout.PlayoutStats, in order */
};

/* Bound by _bind_playout() from playout.py. */
static PyObject *pq_frame_type; /* PlayoutFrame */
static PyObject *pq_report_type; /* FlushReport */
static PyObject *pq_stats_type; /* PlayoutStats */
static PyObject *pq_policy[3]; /* IdlePolicy.SILENCE, COMFORT_NOISE, NOTHING */
static PyObject *pq_kind[3]; /* FrameKind.AUDIO, SILENCE, COMFORT_NOISE */
static PyObject *pq_default_codec; /* g711.PCMU */
static long long pq_default_max_queued = 120 * 8000; /* playout.DEFAULT_MAX_QUEUED_BYTES */
static long pq_default_cn_level = 70;

typedef struct {
    PyObject_HEAD
    int64_t played;
    char complete;
} PqItem;

static PyTypeObject pq_item_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gateway.media._jitter._PlayoutItem",
    .tp_basicsize = sizeof(PqItem),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = NULL,
};

typedef struct PqChunk {
    PyObject *item_id; /* str, owned */
    PqItem *state; /* owned */
    PyObject *data; /* bytes, owned */
    Py_ssize_t offset;
} Chunk;

/* -- the ring of chunks ----------------------------------------------------------------------- */

static Chunk *
pq_chunk(PlayoutQueue *self, Py_ssize_t i)
{
    return &self->ring[(self->head + i) & (self->cap - 1)];
}

static int
pq_push_chunk(PlayoutQueue *self, PyObject *item_id, PqItem *state, PyObject *data)
{
    if (self->count == self->cap) {
        Py_ssize_t cap = self->cap ? self->cap * 2 : 8;
        Chunk *ring = PyMem_Malloc((size_t)cap * sizeof(Chunk));
        if (ring == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < self->count; i++)
            ring[i] = *pq_chunk(self, i);
        PyMem_Free(self->ring);
        self->ring = ring;
        self->cap = cap;
        self->head = 0;
    }
    Chunk *c = pq_chunk(self, self->count);
    c->item_id = Py_NewRef(item_id);
    c->state = (PqItem *)Py_NewRef(state);
    c->data = data; /* the reference is the caller's */
    c->offset = 0;
    self->count++;
    return 0;
}

static void
pq_pop_chunk(PlayoutQueue *self)
{
    Chunk *c = pq_chunk(self, 0);
    PyObject *item_id = c->item_id, *state = (PyObject *)c->state, *data = c->data;
    self->head = (self->head + 1) & (self->cap - 1);
    self->count--;
    Py_DECREF(item_id);
    Py_DECREF(state);
    Py_DECREF(data);
}

static void
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

/* 1 when some queued chunk belongs to item_id, 0 when none, -1 with an exception. */
static int
pq_has_chunk_of(PlayoutQueue *self, PyObject *item_id)
{
    for (Py_ssize_t i = 0; i < self->count; i++) {
        int eq = PyObject_RichCompareBool(pq_chunk(self, i)->item_id, item_id, Py_EQ);
        if (eq != 0)
            return eq;
    }
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

static PyObject *
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
    if (!PyUnicode_Check(item_id)) {
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

static PyObject *
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

static PyObject *
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

static PyObject *
PQ_end_of_response(PlayoutQueue *self, PyObject *unused)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(self->items, &pos, &key, &value))
        ((PqItem *)value)->complete = 1;
    Py_RETURN_NONE;
}

/* -- queries ---------------------------------------------------------------------------------- */

static PyObject *
PQ_played_bytes(PlayoutQueue *self, PyObject *item_id)
{
    PqItem *state = pq_lookup(self, item_id);
    if (state == NULL && PyErr_Occurred())
        return NULL;
    return PyLong_FromLongLong(state ? state->played : 0);
}

static PyObject *
PQ_is_complete(PlayoutQueue *self, PyObject *item_id)
{
    PqItem *state = pq_lookup(self, item_id);
    if (state == NULL && PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(state != NULL && state->complete);
}

static PyObject *
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

static PyObject *
PQ_forget(PlayoutQueue *self, PyObject *item_id)
{
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
        int eq = PyObject_RichCompareBool(self->playing, item_id, Py_EQ);
        if (eq < 0)
            return NULL;
        if (eq)
            Py_CLEAR(self->playing);
    }
    Py_RETURN_NONE;
}

/* -- control ---------------------------------------------------------------------------------- */

static PyObject *
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

static PyObject *
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

static PyObject *
PQ_pause_for_dtmf(PlayoutQueue *self, PyObject *unused)
{
    self->paused = 1;
    Py_RETURN_NONE;
}

static PyObject *
PQ_resume_after_dtmf(PlayoutQueue *self, PyObject *unused)
{
    self->paused = 0;
    Py_RETURN_NONE;
}

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

static int
pq_policy_index(PyObject *policy)
{
    for (int i = 0; i < 3; i++)
        if (policy == pq_policy[i])
            return i;
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
    PyObject *values[S_COUNT];
    for (int i = 0; i < S_COUNT; i++) {
        values[i] = PyLong_FromLongLong(self->stats[i]);
        if (values[i] == NULL) {
            while (i--)
                Py_DECREF(values[i]);
            return NULL;
        }
    }
    PyObject *stats = PyObject_Vectorcall(pq_stats_type, values, S_COUNT, NULL);
    for (int i = 0; i < S_COUNT; i++)
        Py_DECREF(values[i]);
    return stats;
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
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gateway.media._jitter.PlayoutQueue",
    .tp_doc = "The playout queue of gateway/media/playout.py, compiled.",
    .tp_basicsize = sizeof(PlayoutQueue),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)PQ_init,
    .tp_dealloc = (destructor)PQ_dealloc,
    .tp_traverse = (traverseproc)PQ_traverse,
    .tp_clear = (inquiry)PQ_clear,
    .tp_methods = PQ_methods,
    .tp_getset = PQ_getset,
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
    if (PyType_Ready(&pq_item_type) < 0 || PyType_Ready(&pq_queue_type) < 0)
        return -1;
    Py_INCREF(&pq_queue_type);
    if (PyModule_AddObject(module, "PlayoutQueue", (PyObject *)&pq_queue_type) < 0) {
        Py_DECREF(&pq_queue_type);
        return -1;
    }
    return 0;
}
