/* The rules a host applies to what plugins ask of it: which header names
 * and values may pass, which calls the current phase allows, how a status
 * is clamped, how Retry-After is written. Shared by the core's host table
 * (host.c) and the SDK's fake host (sdk/testing.c), so plugin unit tests
 * get the answers production gives. No server dependencies. */
#ifndef SLUICE_HOST_RULES_H
#define SLUICE_HOST_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/host.h"

/* Routing and suspension (set_model, set_upstream, upstream headers,
 * set_priority) belong to on_request: SLUICE_EPHASE after it. */
int host_rule_routing(bool in_request_phase);

/* req_header: the client's Authorization is a secret (plugins get its
 * hash through req_identity). */
bool host_rule_header_readable(const char *name);

/* upstream_set_header: never Authorization (the provider key is the
 * core's), no CR/LF in the name or the value. SLUICE_OK or EINVAL. */
int host_rule_upstream_header(const char *name, struct sluice_str value);

/* resp_add_header: no CR, LF or ':' in the name, no CR/LF in the value. */
int host_rule_client_header(const char *name, struct sluice_str value);

/* upstream_set_model: 1 to 127 bytes (the config's model name limit). */
int host_rule_model(struct sluice_str model);

/* set_priority: a known level. */
int host_rule_priority(enum sluice_priority p);

/* var_set: a name of 1 to 63 bytes, no CR/LF in the value (vars end up in
 * headers and logs). */
int host_rule_var(const char *name, struct sluice_str value);

/* reject(): an error status is 400..599; anything else answers 500. */
int host_rule_reject_status(int status);

/* Retry-After in whole seconds, rounded up, into buf (>= 24 bytes);
 * returns the length. */
size_t host_rule_retry_after(uint64_t retry_after_ms, char *buf, size_t cap);

#endif
