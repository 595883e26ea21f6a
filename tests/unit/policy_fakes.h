/* Fakes of what the gateway gives a policy: a request whose fields the
 * test sets, and gateway health and a clock the test controls. */
#ifndef SLUICE_TEST_POLICY_FAKES_H
#define SLUICE_TEST_POLICY_FAKES_H

#include "policy/policy.h"

#include <stdbool.h>
#include <stdint.h>

struct fake_req {
    const char *model, *endpoint, *tenant, *user, *tier, *priority, *body;
    const char *headers[8][2];
    const char *vars[4][2];
    bool stream;
    uint64_t message_count, message_bytes, input_tokens, max_tokens;
    int body_reads;
};

/* A view of r; body reads are counted in r->body_reads. */
struct policy_req_view view_of(struct fake_req *r);

struct fake_env {
    const char *names[8];
    double values[8];
    double now;
};

/* test_env reads test_env_state. */
extern struct fake_env test_env_state;
extern const struct policy_env test_env;

#endif
