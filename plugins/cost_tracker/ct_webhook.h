/* Threshold crossings posted to a webhook: a JSON body sent with
 * call_upstream() to a configured upstream (so it gets that upstream's
 * pool and timeouts), retried with doubling delays on a worker timer until
 * a 2xx or webhook_retries more attempts. Deliveries still pending when
 * the instance leaves a worker are dropped (and freed). */
#ifndef CT_WEBHOOK_H
#define CT_WEBHOOK_H

#include <stdint.h>

struct cost_tracker;
struct ct_crossing;

/* Worker thread only; does nothing without webhook_upstream. */
void ct_webhook_post(struct cost_tracker *ct, unsigned worker,
                     const struct ct_crossing *c, int64_t now_ms);
/* Frees what this worker still holds (thread_fini). */
void ct_webhook_thread_fini(struct cost_tracker *ct, unsigned worker);

#endif
