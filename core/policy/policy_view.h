/* What a policy script can see: the lazy `req` userdata, the read-only
 * `sluice` table and `print`. Internal to the policy engine. */
#ifndef SLUICE_POLICY_VIEW_H
#define SLUICE_POLICY_VIEW_H

#include "policy.h"

#include <lua.h>
#include <stdint.h>

struct policy_host {
    struct policy_env env;              /* copied at load */
    const struct policy_req_view *view; /* non-NULL only while decide() runs */
    uint64_t call_id;   /* bumped per call: a stashed req from an earlier
                           call no longer matches and raises an error */
    char log_name[128]; /* prefix of sluice.log / print lines */
};

/* Registers the req metatable and puts `sluice` and `print` into the
 * environment table at env_idx. Allocates: run it protected. */
void policy_view_install(lua_State *L, int env_idx, struct policy_host *host);

/* Pushes a fresh `req` bound to host->view for call host->call_id.
 * Allocates: run it protected. */
void policy_view_push_req(lua_State *L, struct policy_host *host);

#endif
