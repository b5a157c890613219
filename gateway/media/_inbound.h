/* gateway.media._jitter: the compiled inbound path's shared declarations (_inbound.c, the type;
 * _inbound_reception.c, RFC 3550 reception statistics). Read _jitter.h first. Names: ib_. */
#ifndef SRG_INBOUND_H
#define SRG_INBOUND_H

#include "_jitter.h"

/* RFC 3550 A.1 (stats.py) */
#define RTP_SEQ_MOD 65536

/* stats.py ReceptionStats (with its InterarrivalJitter) for one SSRC. */
typedef struct {
    int64_t ssrc, clock_rate;
    int has_transit;
    double transit, jitter;
    int64_t base_seq, max_seq, bad_seq, cycles, received, expected_prior, received_prior;
    int64_t last_sr_ntp_middle;
    int has_last_sr_arrival;
    double last_sr_arrival;
} Reception;

/* rtcp.ReportBlock, bound by _bind_inbound (_inbound.c) */
extern PyObject *ib_report_block;

/* _inbound_reception.c: stats.py ReceptionStats, function by function. */
int64_t ib_floordiv(int64_t a, int64_t b); /* Python's a // b, b != 0 */
void ib_reception_start(Reception *r, int64_t ssrc, int64_t first_seq, int64_t clock_rate);
void ib_on_packet(Reception *r, int64_t seq, int64_t rtp_timestamp, double arrival, int timing);
int64_t ib_lost(const Reception *r);
PyObject *ib_report_block_of(Reception *r, PyObject *now_obj);

#endif /* SRG_INBOUND_H */
