/* gateway.media._jitter: the compiled outbound tick (issue 14): the playout queue of
 * gateway/media/playout.py (_playout.c, names pq_) and the tick of gateway/media/pacer.py
 * CallOutput (_tick.c, names ct_), which takes its frame from pq_next and sends it through the
 * compiled outbound path (_outbound.c) without Python calls when all three are compiled. */
#ifndef SRG_PLAYOUT_H
#define SRG_PLAYOUT_H

#include "_jitter.h"

#define PQ_FRAME_BYTES 160 /* playout.FRAME_BYTES */

/* What pq_next hands out (playout.FrameKind, plus "send nothing"). */
enum { PQ_NONE, PQ_AUDIO, PQ_SILENCE, PQ_CN };

typedef struct {
    PyObject_HEAD
    /* the chunks, oldest first: ring[(head + i) & (cap - 1)] for i < count (cap a power of 2) */
    struct PqChunk *ring;
    Py_ssize_t head, count, cap;
    long long queued; /* bytes in the chunks */
    PyObject *items; /* dict: item id -> item state (played, complete) */
    PyObject *overflowed; /* set of item ids, NULL until the first overflow */
    PyObject *playing, *last_item; /* item ids or NULL */
    PyObject *codec;
    PyObject *silence_frame; /* 160 silence bytes */
    PyObject *silence_playout, *cn_playout; /* the idle PlayoutFrames, built once */
    unsigned char silence;
    int policy; /* index into (SILENCE, COMFORT_NOISE, NOTHING) */
    long long cn_refresh, cn_level, max_queued, start_delay;
    long long held_ticks, idle_ticks;
    char in_talkspurt, paused;
    long long stats[9]; /* playout.PlayoutStats, in field order (S_*) */
    /* Instance attributes, as the pure dataclass has (a bench or test replaces a method on
     * one queue): NULL until the first is set; while set, the compiled tick calls the queue's
     * next_frame through Python so that a replacement is seen. */
    PyObject *dict;
} PlayoutQueue;


/* _playout.c (the queue's logic) and _playout_type.c (its Python type) share these. */
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

typedef struct {
    PyObject_HEAD
    int64_t played;
    char complete;
} PqItem;

typedef struct PqChunk {
    PyObject *item_id; /* str, owned */
    PqItem *state; /* owned */
    PyObject *data; /* bytes, owned */
    Py_ssize_t offset;
} Chunk;

/* Bound by _bind_playout() from playout.py (_playout_type.c). */
extern PyObject *pq_frame_type, *pq_report_type, *pq_stats_type, *pq_default_codec;
extern PyObject *pq_policy[3], *pq_kind[3]; /* IdlePolicy / FrameKind members, in enum order */
extern long long pq_default_max_queued;
extern long pq_default_cn_level;
extern PyTypeObject pq_item_type;
Chunk *pq_chunk(PlayoutQueue *self, Py_ssize_t i);
void pq_clear_chunks(PlayoutQueue *self);
/* The methods, `self` initialised (the type's wrappers check it). */
PyObject *PQ_enqueue(PlayoutQueue *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *PQ_next_frame(PlayoutQueue *self, PyObject *arg);
PyObject *PQ_end_of_item(PlayoutQueue *self, PyObject *arg);
PyObject *PQ_end_of_response(PlayoutQueue *self, PyObject *arg);
PyObject *PQ_played_bytes(PlayoutQueue *self, PyObject *arg);
PyObject *PQ_is_complete(PlayoutQueue *self, PyObject *arg);
PyObject *PQ_pending_items(PlayoutQueue *self, PyObject *arg);
PyObject *PQ_forget(PlayoutQueue *self, PyObject *arg);
PyObject *PQ_flush(PlayoutQueue *self, PyObject *arg);
PyObject *PQ_drop_oldest(PlayoutQueue *self, PyObject *arg);
PyObject *PQ_pause_for_dtmf(PlayoutQueue *self, PyObject *arg);
PyObject *PQ_resume_after_dtmf(PlayoutQueue *self, PyObject *arg);

extern PyTypeObject pq_queue_type;
/* One tick's frame: the kind; for PQ_AUDIO a new reference to the payload in *payload and the
 * talkspurt marker in *marker (idle kinds: the queue's own silence_frame / CN payload apply).
 * -1 with an exception. */
int pq_next(PlayoutQueue *self, PyObject **payload, int *marker);
/* The FrameKind member of a PQ_* kind (borrowed; NULL before _bind_playout). */
PyObject *pq_frame_kind(int kind);
PyObject *pq_bind(PyObject *module, PyObject *args);
int pq_add_type(PyObject *module);

/* _tick.c */
PyObject *ct_bind(PyObject *module, PyObject *args);
int ct_add_type(PyObject *module);
/* The CallOutputCore whose bound `tick` `callable` is (borrowed), or NULL; and that core's tick
 * of one frame (what CallOutputCore.tick(frame_index, deadline) does), 0 or -1. */
PyObject *ct_core_of(PyObject *callable);
int ct_tick_c(PyObject *core, long long frame_index);
/* _clock.c: the per-stream tick (StreamTickCore), the session's tick watch (TickWatch) and
 * the slot wakeup's member loop (run_slot). */
PyObject *sc_bind(PyObject *module, PyObject *args);
PyObject *sc_run_slot(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
int sc_add_types(PyObject *module);

/* _outbound.c: the outbound path's senders for a C caller. `ob_sender_of(callable, which)` is
 * the OutboundPath whose bound method `callable` is (which: OB_SEND_FRAME, OB_SEND_CN,
 * OB_ADVANCE), borrowed, or NULL. The others are its send_frame(payload, marker),
 * send_comfort_noise(payload) and advance(samples), 0 or -1 with an exception. */
enum { OB_SEND_FRAME, OB_SEND_CN, OB_ADVANCE };
PyObject *ob_sender_of(PyObject *callable, int which);
int ob_send_frame_c(PyObject *path, PyObject *payload, int marker);
int ob_send_cn_c(PyObject *path, PyObject *payload);
int ob_advance_c(PyObject *path, uint32_t samples);

#endif /* SRG_PLAYOUT_H */
