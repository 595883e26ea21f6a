/* Runs plugin hooks and the policy in their phases. Request phase in
 * config order (with suspension), response and log phases in reverse. */
#ifndef SLUICE_PIPELINE_H
#define SLUICE_PIPELINE_H

#include "sluice/plugin.h"

struct sluice_req;

/* Runs the policy (first time) and the remaining on_request hooks. Ends by
 * starting the upstream call, sending a local response, or suspending. */
void pipeline_run(struct sluice_req *r);
/* Before a retry or fallback attempt: the on_attempt hooks of the plugins
 * the request reached, in config order (with suspension), so every attempt
 * passes the pacing and admission of the upstream it goes to. Ends by
 * starting the attempt, sending a plugin's answer, or suspending. */
void pipeline_attempt(struct sluice_req *r);
/* Called by the worker when a suspended request is woken or its timer
 * fires: re-runs the hook that suspended. */
void pipeline_resume(struct sluice_req *r);
/* Arms resume_after for the current hook. */
void pipeline_resume_after(struct sluice_req *r, uint64_t delay_ms);

/* on_upstream_response for every reached plugin; returns SLUICE_RESPOND if
 * one replaced the answer. */
enum sluice_action pipeline_upstream_response(struct sluice_req *r);
void pipeline_response(struct sluice_req *r);
void pipeline_log(struct sluice_req *r);

#endif
