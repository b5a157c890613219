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
    long long stats[9]; /* playout.PlayoutStats, in field order */
} PlayoutQueue;

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
