/* gateway.media._jitter, part 4: RFC 3550 reception statistics of the compiled inbound path,
 * mirroring gateway/media/stats.py ReceptionStats and InterarrivalJitter function by function
 * (A.1 sequence tracking, A.3 loss and the report block's interval, A.8 jitter). One Reception
 * per SSRC, held by value in the InboundPath (_inbound.c: the current and the previous source). */
#include "_inbound.h"

int64_t
ib_floordiv(int64_t a, int64_t b) /* Python's a // b, b != 0 */
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/* -- stats.py ReceptionStats ------------------------------------------------------------------ */

static void
ib_init_seq(Reception *r, int64_t seq)
{
    r->base_seq = seq;
    r->max_seq = seq;
    r->bad_seq = RTP_SEQ_MOD + 1; /* so seq == bad_seq is false */
    r->cycles = 0;
}

void
ib_reception_start(Reception *r, int64_t ssrc, int64_t first_seq, int64_t clock_rate)
{
    memset(r, 0, sizeof(*r));
    r->ssrc = ssrc;
    r->clock_rate = clock_rate;
    ib_init_seq(r, first_seq);
}

void
ib_on_packet(Reception *r, int64_t seq, int64_t rtp_timestamp, double arrival, int timing)
{
    int64_t udelta = (seq - r->max_seq) & 0xFFFF;
    if (udelta < MAX_DROPOUT) {
        if (seq < r->max_seq)
            r->cycles += RTP_SEQ_MOD; /* wrapped */
        r->max_seq = seq;
    }
    else if (udelta <= RTP_SEQ_MOD - MAX_MISORDER) {
        if (seq == r->bad_seq) {
            /* Two sequential packets after a big jump: the peer restarted its sequence. */
            ib_init_seq(r, seq);
            r->received = 0;
            r->expected_prior = 0;
            r->received_prior = 0;
        }
        else {
            r->bad_seq = (seq + 1) & 0xFFFF;
            return;
        }
    }
    r->received++;
    if (!timing)
        return;
    /* InterarrivalJitter.update (A.8): the same arithmetic as the jitter buffer's own. */
    jb_a8_update(&r->transit, &r->has_transit, &r->jitter, (double)r->clock_rate, rtp_timestamp,
                 arrival);
}

int64_t
ib_lost(const Reception *r)
{
    return (r->cycles + r->max_seq) - r->base_seq + 1 - r->received;
}

/* int(value) & 0xFFFFFFFF, as Python computes it (NaN: ValueError, inf: OverflowError). */
static PyObject *
ib_int_mod32(double value)
{
    PyObject *whole = PyLong_FromDouble(value);
    if (whole == NULL)
        return NULL;
    PyObject *mask = PyLong_FromUnsignedLong(0xFFFFFFFFUL);
    if (mask == NULL) {
        Py_DECREF(whole);
        return NULL;
    }
    PyObject *result = PyNumber_And(whole, mask);
    Py_DECREF(whole);
    Py_DECREF(mask);
    return result;
}

/* ReceptionStats.report_block */
PyObject *
ib_report_block_of(Reception *r, PyObject *now_obj)
{
    int64_t expected = (r->cycles + r->max_seq) - r->base_seq + 1;
    int64_t expected_interval = expected - r->expected_prior;
    int64_t received_interval = r->received - r->received_prior;
    r->expected_prior = expected;
    r->received_prior = r->received;
    int64_t lost_interval = expected_interval - received_interval;
    int64_t fraction;
    if (expected_interval == 0 || lost_interval <= 0)
        fraction = 0;
    else
        fraction = ib_floordiv(lost_interval * 256, expected_interval);
    PyObject *dlsr;
    if (r->has_last_sr_arrival) {
        double now;
        if (jb_as_double(now_obj, "now", &now) < 0)
            return NULL;
        dlsr = ib_int_mod32((now - r->last_sr_arrival) * 65536);
    }
    else {
        dlsr = PyLong_FromLong(0);
    }
    if (dlsr == NULL)
        return NULL;
    PyObject *jitter = PyLong_FromDouble(r->jitter);
    if (jitter == NULL) {
        Py_DECREF(dlsr);
        return NULL;
    }
    PyObject *kwargs = Py_BuildValue(
        "{s:L,s:L,s:L,s:L,s:N,s:L,s:N}", "ssrc", (long long)r->ssrc, "fraction_lost",
        (long long)(fraction < 255 ? fraction : 255), "cumulative_lost",
        (long long)(expected - r->received), "highest_seq",
        (long long)((r->cycles + r->max_seq) & 0xFFFFFFFFLL), "jitter", jitter, "lsr",
        (long long)r->last_sr_ntp_middle, "dlsr", dlsr);
    if (kwargs == NULL)
        return NULL;
    PyObject *empty = PyTuple_New(0);
    PyObject *block = empty ? PyObject_Call(ib_report_block, empty, kwargs) : NULL;
    Py_XDECREF(empty);
    Py_DECREF(kwargs);
    return block;
}
