/* gateway.media._jitter: the inbound jitter buffer of gateway/media/jitter.py in C (issue 14).
 *
 * The per-packet path (push, pop_ready) is the largest piece of the inbound RTP callback, so it is
 * compiled here, the way websockets ships its C speedups: an optional extension, the pure-Python
 * class (jitter.PyJitterBuffer) kept and used wherever this module is not built, and both tested
 * against each other (tests/media/test_jitter_parity.py) for identical frames, statistics and
 * properties on the same input.
 *
 * This header (the state, the rules below), _jitter_core.c (the logic, mirroring jitter.py
 * function by function: read the behaviour there, in its module docstring), _jitter.c (the
 * Python type and module); and the compiled inbound path of inbound.py, which pushes into this
 * buffer through jb_push/jb_pop_ready without Python calls: _inbound.h, _inbound.c (its type)
 * and _inbound_reception.c (RFC 3550 reception statistics), names prefixed ib_. Names here are
 * prefixed jb_ (they are not static).
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
#ifndef SRG_JITTER_H
#define SRG_JITTER_H

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
    ST_CONCEAL_SKIPPED,
    ST_COUNT /* the fields of jitter.JitterStats, in order */
};

/* Set by _bind() from jitter.py: Frame, JitterStats and g711.silence_byte (_jitter_core.c). */
extern PyTypeObject *jb_frame_type;
extern PyObject *jb_stats_type;
extern PyObject *jb_silence_byte_func;
/* Interned attribute names of RtpPacket, set by PyInit__jitter. */
extern PyObject *jb_str_sequence_number, *jb_str_timestamp, *jb_str_ssrc, *jb_str_payload;

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
    int64_t media_time, frame_samples, min_conceal;
    /* jitter.py _take_credit: concealment credit in samples, refilled by real time */
    double credit, credit_at;
    int has_credit_at;
    int has_ssrc, has_previous_ssrc;
    int64_t ssrc, previous_ssrc;
    int has_probe; /* an unconfirmed sequence jump: the packet (payload owned) and its arrival */
    Packet probe;
    double probe_arrival;
    int64_t highest_seq, highest_seq_raw, ts_ref, ts_ref_raw, ts_end;
    double base;
    int has_next_ts;
    int64_t next_ts;
    int underrun;
    int64_t stats[ST_COUNT];
    int64_t recent[RECENT_SEQS];
} JitterBuffer;

/* _jitter.c: the type (for the compiled inbound path, _inbound.c, which pushes and pops without
 * Python calls) and push/pop_ready on a decoded packet and a C time. */
extern PyTypeObject jb_buffer_type;
int jb_push(JitterBuffer *self, const Packet *p, double arrival);
PyObject *jb_pop_ready(JitterBuffer *self, double now);

/* _inbound.c: the compiled inbound path (InboundPath) and its binding to inbound.py. */
PyObject *ib_bind(PyObject *module, PyObject *args);
int ib_add_type(PyObject *module);

/* _outbound.c: the compiled outbound path (OutboundPath) and its binding to outbound.py. */
PyObject *ob_bind(PyObject *module, PyObject *args);
int ob_add_type(PyObject *module);

/* _jitter_core.c: the StreamStats fields a path updates in place (inbound, outbound): each must
 * be a writable object slot of the `stats` type; `out[i]` gets the member of `names[i]`. -1
 * with TypeError (naming `who` and the field) otherwise. */
struct PyMemberDef;
int jb_stats_members(PyObject *stats, const char *const *names, int count,
                     struct PyMemberDef **out, const char *who);
/* stats.<member> += delta, as Python does it (any number type the field holds). */
int jb_stats_add(PyObject *stats, struct PyMemberDef *member, long long delta);
/* RFC 3550 A.8 (stats.py InterarrivalJitter.update): J += (|D(i-1,i)| - J) / 16 in timestamp
 * units, the transit difference taken modulo 2**32; the first packet only records its transit. */
void jb_a8_update(double *transit_state, int *has_transit, double *jitter, double clock_rate,
                  int64_t rtp_timestamp, double arrival);

/* _jitter_core.c: NamedTuples built without Python code (jitter.Frame, playout.PlayoutFrame):
 * the check at bind time (-1 with TypeError naming `who` and `what`), then type(*items). */
int jb_check_named_tuple(PyTypeObject *type, const char *who, const char *what);
PyObject *jb_make_tuple(PyTypeObject *type, PyObject *const *items, Py_ssize_t n);

/* _jitter_core.c: what every Python type of the extension needs (InboundPath, OutboundPath,
 * PlayoutQueue, CallOutputCore):
 * - jb_intern: intern each `text` into its `slot` (attribute names read per packet), -1 on error;
 * - jb_add_type: PyType_Ready, then module.<name> = type;
 * - jb_counters: type(*values) for a dataclass of int counters read as a snapshot (stats);
 * - jb_set_flag / JB_FLAG_ATTR: a char flag's getter and setter (any truth value; no delete). */
typedef struct {
    PyObject **slot;
    const char *text;
} JbName;
int jb_intern(const JbName *names, size_t count);
int jb_add_type(PyObject *module, PyTypeObject *type, const char *name);
PyObject *jb_counters(PyObject *type, const long long *values, int count);
int jb_set_flag(char *field, PyObject *value, const char *name);
#define JB_FLAG_ATTR(Type, prefix, name, field)                                                \
    static PyObject *prefix##_get_##name(Type *self, void *closure)                            \
    {                                                                                          \
        return PyBool_FromLong(self->field);                                                   \
    }                                                                                          \
    static int prefix##_set_##name(Type *self, PyObject *value, void *closure)                 \
    {                                                                                          \
        return jb_set_flag(&self->field, value, #name);                                        \
    }

/* Every type of the extension is a GC type with prefix_init/_dealloc/_traverse/_clear:
 * JB_TYPE_SLOTS fills those slots of its PyTypeObject (the type adds its tables);
 * JB_GC_DEALLOC defines prefix_dealloc for a type whose clear releases everything. */
#define JB_TYPE_SLOTS(Type, prefix, name, doc, flags)                                          \
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gateway.media._jitter." name, .tp_doc = doc,     \
    .tp_basicsize = sizeof(Type), .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | (flags), \
    .tp_new = PyType_GenericNew, .tp_init = (initproc)prefix##_init,                           \
    .tp_dealloc = (destructor)prefix##_dealloc, .tp_traverse = (traverseproc)prefix##_traverse, \
    .tp_clear = (inquiry)prefix##_clear
#define JB_GC_DEALLOC(Type, prefix)                                                            \
    static void prefix##_dealloc(Type *self)                                                   \
    {                                                                                          \
        PyObject_GC_UnTrack(self);                                                             \
        prefix##_clear(self);                                                                  \
        Py_TYPE(self)->tp_free((PyObject *)self);                                              \
    }

/* _jitter_core.c: the buffer's logic, one function per function of jitter.py. */
int jb_as_double(PyObject *obj, const char *name, double *out);
int jb_read_packet(PyObject *packet, Packet *p);
int jb_py_int(double value, int64_t *out);
int jb_lookup_silence(PyObject *codec, unsigned char *out);
int jb_append_frame(PyObject *out, PyObject *payload, int64_t media_time, int concealed);
Entry jb_buffer_pop_head(JitterBuffer *self);
void jb_buffer_clear(JitterBuffer *self);
void jb_reset_source_state(JitterBuffer *self, int64_t seq, int64_t raw_ts, int64_t ext_ts,
                           double arrival);
void jb_start_source(JitterBuffer *self, const Packet *p, double arrival);
void jb_clear_probe(JitterBuffer *self);
int jb_conceal(JitterBuffer *self, int64_t samples, PyObject *out);
int jb_release(JitterBuffer *self, PyObject *payload, Py_ssize_t size, int64_t ts,
               int64_t next_ts, PyObject *out);
int jb_flush_buffered(JitterBuffer *self);
int jb_restart(JitterBuffer *self, const Packet *p, double arrival);
void jb_decay_reorder_need(JitterBuffer *self);
int jb_take_credit(JitterBuffer *self, int64_t samples, double now);
int jb_accept(JitterBuffer *self, const Packet *p, double arrival, int64_t ahead);

#endif /* SRG_JITTER_H */
