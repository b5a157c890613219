/* gateway.media._jitter, part 1 of 2: the buffer's logic, mirroring gateway/media/jitter.py
 * function by function (conversions, Frame building, the sorted entry array, push's helpers,
 * the release and concealment of pop_ready). The Python type and module are in _jitter.c; the
 * rules that keep this identical to the pure class are in _jitter.h. */
#include "_jitter.h"
#include <structmember.h>

PyTypeObject *jb_frame_type = NULL;
PyObject *jb_stats_type = NULL;
PyObject *jb_silence_byte_func = NULL;
PyObject *jb_str_sequence_number, *jb_str_timestamp, *jb_str_ssrc, *jb_str_payload;

/* -- conversions ------------------------------------------------------------------------------ */

int
jb_as_double(PyObject *obj, const char *name, double *out)
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
jb_as_number(PyObject *obj, const char *name, int64_t *out)
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
jb_get_number(PyObject *packet, PyObject *attr, const char *name, int64_t *out)
{
    PyObject *value = PyObject_GetAttr(packet, attr);
    if (value == NULL)
        return -1;
    int rc = jb_as_number(value, name, out);
    Py_DECREF(value);
    return rc;
}

/* Read the four fields jitter.py reads; on success p->payload is a new reference. */
int
jb_read_packet(PyObject *packet, Packet *p)
{
    if (jb_get_number(packet, jb_str_sequence_number, "sequence_number", &p->seq) < 0 ||
        jb_get_number(packet, jb_str_timestamp, "timestamp", &p->ts) < 0 ||
        jb_get_number(packet, jb_str_ssrc, "ssrc", &p->ssrc) < 0)
        return -1;
    PyObject *payload = PyObject_GetAttr(packet, jb_str_payload);
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
jb_clamp_size(double value)
{
    if (value > (double)SIZE_LIMIT)
        return SIZE_LIMIT;
    if (value < -(double)SIZE_LIMIT)
        return -SIZE_LIMIT;
    return (int64_t)value; /* truncation towards zero, as int() */
}

/* int(value) as Python does it: NaN -> ValueError, inf -> OverflowError. */
int
jb_py_int(double value, int64_t *out)
{
    if (isnan(value)) {
        PyErr_SetString(PyExc_ValueError, "cannot convert float NaN to integer");
        return -1;
    }
    if (isinf(value)) {
        PyErr_SetString(PyExc_OverflowError, "cannot convert float infinity to integer");
        return -1;
    }
    *out = jb_clamp_size(value);
    return 0;
}

int
jb_lookup_silence(PyObject *codec, unsigned char *out)
{
    if (jb_silence_byte_func == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "gateway.media._jitter is not bound (import jitter.py)");
        return -1;
    }
    PyObject *value = PyObject_CallOneArg(jb_silence_byte_func, codec);
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

int
jb_check_named_tuple(PyTypeObject *type, const char *who, const char *what)
{
    /* A NamedTuple: a tuple subclass without instance dict or extra slots. */
    if (!PyType_IsSubtype(type, &PyTuple_Type) ||
        type->tp_basicsize != PyTuple_Type.tp_basicsize ||
        type->tp_itemsize != PyTuple_Type.tp_itemsize) {
        PyErr_Format(PyExc_TypeError, "%s needs a NamedTuple type for %s", who, what);
        return -1;
    }
    return 0;
}

/* type(*items) for a NamedTuple type without running Python code: a tuple of that type,
 * filled as tuple.__new__ fills a subclass instance. Steals nothing. */
PyObject *
jb_make_tuple(PyTypeObject *type, PyObject *const *items, Py_ssize_t n)
{
#if PY_VERSION_HEX >= 0x030E0000
    /* 3.14 keeps more state in a tuple (a cached hash): go through tuple's own tp_new. */
    PyObject *values = PyTuple_New(n);
    if (values == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        PyTuple_SET_ITEM(values, i, Py_NewRef(items[i]));
    PyObject *args = PyTuple_Pack(1, values);
    Py_DECREF(values);
    if (args == NULL)
        return NULL;
    PyObject *tuple = PyTuple_Type.tp_new(type, args, NULL);
    Py_DECREF(args);
    return tuple;
#else
    PyObject *tuple = type->tp_alloc(type, n);
    if (tuple == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        PyTuple_SET_ITEM(tuple, i, Py_NewRef(items[i]));
    return tuple;
#endif
}

/* Frame(payload, media_time, concealed). */
static PyObject *
jb_make_frame(PyObject *payload, int64_t media_time, int concealed)
{
    PyObject *time = PyLong_FromLongLong(media_time);
    if (time == NULL)
        return NULL;
    PyObject *items[3] = {payload, time, concealed ? Py_True : Py_False};
    PyObject *frame = jb_make_tuple(jb_frame_type, items, 3);
    Py_DECREF(time);
    return frame;
}

int
jb_append_frame(PyObject *out, PyObject *payload, int64_t media_time, int concealed)
{
    PyObject *frame = jb_make_frame(payload, media_time, concealed);
    if (frame == NULL)
        return -1;
    int rc = PyList_Append(out, frame);
    Py_DECREF(frame);
    return rc;
}

/* -- buffer ----------------------------------------------------------------------------------- */

/* Index of the first entry with ts >= key. */
static Py_ssize_t
jb_buffer_find(JitterBuffer *self, int64_t key)
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
jb_buffer_reserve(JitterBuffer *self)
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

/* Insert at index (from jb_buffer_find, after jb_buffer_reserve); takes a new reference. */
static void
jb_buffer_insert(JitterBuffer *self, Py_ssize_t index, int64_t ts, PyObject *payload,
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
Entry
jb_buffer_pop_head(JitterBuffer *self)
{
    Entry head = self->buf[self->start];
    self->start++;
    self->count--;
    if (self->count == 0)
        self->start = 0;
    return head;
}

void
jb_buffer_clear(JitterBuffer *self)
{
    Py_ssize_t end = self->start + self->count;
    for (Py_ssize_t i = self->start; i < end; i++)
        Py_CLEAR(self->buf[i].payload);
    self->start = 0;
    self->count = 0;
}

/* -- state ------------------------------------------------------------------------------------ */

void
jb_a8_update(double *transit_state, int *has_transit, double *jitter, double clock_rate,
             int64_t rtp_timestamp, double arrival)
{
    double transit = arrival * clock_rate - (double)rtp_timestamp;
    double previous = *transit_state;
    int had = *has_transit;
    *transit_state = transit;
    *has_transit = 1;
    if (!had)
        return;
    double d = transit - previous;
    if (d > 2147483648.0)
        d -= 4294967296.0;
    else if (d < -2147483648.0)
        d += 4294967296.0;
    if (d < 0)
        d = -d;
    *jitter += (d - *jitter) / 16.0;
}

static void
jb_jitter_update(JitterBuffer *self, int64_t rtp_timestamp, double arrival)
{
    jb_a8_update(&self->transit, &self->has_transit, &self->jitter, (double)self->rate,
                 rtp_timestamp, arrival);
}

void
jb_reset_source_state(JitterBuffer *self, int64_t seq, int64_t raw_ts, int64_t ext_ts,
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

void
jb_clear_probe(JitterBuffer *self)
{
    if (self->has_probe) {
        self->has_probe = 0;
        Py_CLEAR(self->probe.payload);
    }
}

void
jb_start_source(JitterBuffer *self, const Packet *p, double arrival)
{
    self->ssrc = p->ssrc;
    self->has_ssrc = 1;
    jb_clear_probe(self);
    self->has_transit = 0; /* InterarrivalJitter.restart */
    jb_reset_source_state(self, p->seq, p->ts, 0, arrival);
}

int
jb_conceal(JitterBuffer *self, int64_t samples, PyObject *out)
{
    PyObject *payload = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)samples);
    if (payload == NULL)
        return -1;
    memset(PyBytes_AS_STRING(payload), self->silence, (size_t)samples);
    int rc = jb_append_frame(out, payload, self->media_time, 1);
    Py_DECREF(payload);
    if (rc < 0)
        return -1;
    self->media_time += samples;
    self->stats[ST_CONCEALED_FRAMES]++;
    self->stats[ST_CONCEALED_SAMPLES] += samples;
    return 0;
}

/* jitter.py _release; steals nothing. */
int
jb_release(JitterBuffer *self, PyObject *payload, Py_ssize_t size, int64_t ts, int64_t next_ts,
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
    int rc = jb_append_frame(out, piece, self->media_time, 0);
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
int
jb_flush_buffered(JitterBuffer *self)
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
                    if (jb_conceal(self, step, out) < 0) {
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
        if (jb_release(self, e->payload, e->size, ts, next_ts, out) < 0) {
            rc = -1;
            break;
        }
        next_ts = self->next_ts;
    }
    jb_buffer_clear(self);
    self->has_next_ts = 0;
    return rc;
}

int
jb_restart(JitterBuffer *self, const Packet *p, double arrival)
{
    if (jb_flush_buffered(self) < 0)
        return -1;
    jb_start_source(self, p, arrival);
    return 0;
}

static void
jb_raise_reorder_need(JitterBuffer *self, double need)
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

/* jitter.py _take_credit: spend `samples` of concealment credit, refilled by the real time since
 * the last refill, at most max_gap; 0 when there is not enough. */
int
jb_take_credit(JitterBuffer *self, int64_t samples, double now)
{
    double credit = self->credit;
    if (!self->has_credit_at) {
        self->credit_at = now;
        self->has_credit_at = 1;
    }
    else if (now > self->credit_at) {
        credit += (now - self->credit_at) * (double)self->rate;
        if (credit > (double)self->max_gap)
            credit = (double)self->max_gap;
        self->credit_at = now;
    }
    if (credit < (double)samples) {
        self->credit = credit;
        return 0;
    }
    self->credit = credit - (double)samples;
    return 1;
}

void
jb_decay_reorder_need(JitterBuffer *self)
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

int
jb_accept(JitterBuffer *self, const Packet *p, double arrival, int64_t ahead)
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
        if (jb_restart(self, p, arrival) < 0)
            return -1;
        return jb_accept(self, p, arrival, 0);
    }
    if (self->has_next_ts && ext_ts + size <= self->next_ts) {
        int64_t next_ts = self->next_ts;
        if (ahead > 0 && next_ts - ext_ts > self->max_gap) {
            stats[ST_RESYNCS]++; /* timestamps went backwards in sequence: sender reset them */
            if (jb_restart(self, p, arrival) < 0)
                return -1;
            return jb_accept(self, p, arrival, 0);
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
                jb_raise_reorder_need(self, self->delay);
        }
        return 0;
    }
    Py_ssize_t index = jb_buffer_find(self, ext_ts);
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
            if (jb_restart(self, p, arrival) < 0)
                return -1;
            return jb_accept(self, p, arrival, 0);
        }
        stats[ST_INVALID]++;
        return 0;
    }
    Py_ssize_t start = self->start;
    if (jb_buffer_reserve(self) < 0)
        return -1;
    index -= start - self->start; /* compaction moved the entries */
    if (ahead < 0) {
        stats[ST_REORDERED]++;
        if (!self->underrun)
            jb_raise_reorder_need(self, arrival - self->base - (double)ext_ts / (double)self->rate);
    }
    else {
        self->highest_seq = seq;
        self->highest_seq_raw = p->seq;
        if (ext_ts >= self->ts_ref) {
            self->ts_ref = ext_ts;
            self->ts_ref_raw = p->ts;
            if (ext_ts + size > self->ts_end)
                self->ts_end = ext_ts + size;
            /* jitter.py: never below 10 ms (1-sample packets with gaps: one frame per sample) */
            self->frame_samples = size > self->min_conceal ? size : self->min_conceal;
        }
    }
    self->recent[slot] = seq;
    jb_buffer_insert(self, index, ext_ts, p->payload, size);
    jb_jitter_update(self, ext_ts, arrival);
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

int
jb_stats_members(PyObject *stats, const char *const *names, int count, PyMemberDef **out,
                 const char *who)
{
    for (int i = 0; i < count; i++) {
        /* A slots dataclass: each field is a member descriptor holding an object. */
        PyObject *descr = PyObject_GetAttrString(stats, names[i]);
        if (descr == NULL)
            PyErr_Clear();
        int slot = descr != NULL && Py_IS_TYPE(descr, &PyMemberDescr_Type) &&
                   PyDescr_TYPE(descr) == (PyTypeObject *)stats &&
                   ((PyMemberDescrObject *)descr)->d_member->type == T_OBJECT_EX &&
                   !(((PyMemberDescrObject *)descr)->d_member->flags & READONLY);
        if (slot)
            out[i] = ((PyMemberDescrObject *)descr)->d_member;
        /* The type (held by the caller) keeps its descriptors and their PyMemberDef alive. */
        Py_XDECREF(descr);
        if (!slot) {
            PyErr_Format(PyExc_TypeError, "%s: StreamStats.%s is not a writable slot", who,
                         names[i]);
            return -1;
        }
    }
    return 0;
}

int
jb_stats_add(PyObject *stats, PyMemberDef *member, long long delta)
{
    PyObject *old = PyMember_GetOne((const char *)stats, member);
    if (old == NULL)
        return -1;
    PyObject *updated = NULL;
    if (PyLong_CheckExact(old)) {
        int overflow = 0;
        long long value = PyLong_AsLongLongAndOverflow(old, &overflow);
        if (!overflow && !(value == -1 && PyErr_Occurred()) && value < ((int64_t)1 << 62) &&
            value > -((int64_t)1 << 62) && delta < ((int64_t)1 << 62) &&
            delta > -((int64_t)1 << 62))
            updated = PyLong_FromLongLong(value + delta);
    }
    if (updated == NULL && !PyErr_Occurred()) {
        PyObject *step = PyLong_FromLongLong(delta);
        if (step != NULL) {
            updated = PyNumber_InPlaceAdd(old, step);
            Py_DECREF(step);
        }
    }
    Py_DECREF(old);
    if (updated == NULL)
        return -1;
    int rc = PyMember_SetOne((char *)stats, member, updated);
    Py_DECREF(updated);
    return rc;
}

/* -- the Python types' shared boilerplate ------------------------------------------------------ */

int
jb_intern(const JbName *names, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].text);
        if (*names[i].slot == NULL)
            return -1;
    }
    return 0;
}

int
jb_add_type(PyObject *module, PyTypeObject *type, const char *name)
{
    if (PyType_Ready(type) < 0)
        return -1;
    Py_INCREF(type);
    if (PyModule_AddObject(module, name, (PyObject *)type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}

PyObject *
jb_counters(PyObject *type, const long long *values, int count)
{
    PyObject *args[16] = {NULL};
    if (count > 16) {
        PyErr_SetString(PyExc_SystemError, "jb_counters: too many counters");
        return NULL;
    }
    for (int i = 0; i < count; i++) {
        args[i] = PyLong_FromLongLong(values[i]);
        if (args[i] == NULL) {
            while (i--)
                Py_DECREF(args[i]);
            return NULL;
        }
    }
    PyObject *result = PyObject_Vectorcall(type, args, (size_t)count, NULL);
    for (int i = 0; i < count; i++)
        Py_DECREF(args[i]);
    return result;
}

int
jb_set_flag(char *field, PyObject *value, const char *name)
{
    if (value == NULL) {
        PyErr_Format(PyExc_TypeError, "cannot delete %s", name);
        return -1;
    }
    int truth = PyObject_IsTrue(value);
    if (truth < 0)
        return -1;
    *field = (char)truth;
    return 0;
}
