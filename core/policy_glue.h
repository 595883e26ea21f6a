/* Runs the worker's Lua policy for a request and applies its decision. */
#ifndef SLUICE_POLICY_GLUE_H
#define SLUICE_POLICY_GLUE_H

#include <stdbool.h>

struct sluice_req;
struct worker;

/* Returns false when the request must be answered locally now (policy
 * reject, or a policy error under fail-closed); the response is set. */
bool policy_apply(struct sluice_req *r);
/* Worker thread: (re)builds the worker's policy state when the current
 * generation's script changed or the file was edited (watch mode). */
void policy_refresh(struct worker *w);

#endif
