/* Cost of one decide() of a policy script, single thread, hot caches:
 * a reused decision (decide_is_pure), the same script run by Lua, and a
 * call that runs and is kept (recorded, then the state check). The script
 * is policies/default.lua unless given. Not built by CMake; run:
 *   gcc -O2 -std=c11 -D_GNU_SOURCE -Icore -Itests -Itests/unit \
 *       $(pkg-config --cflags lua5.4) bench/policy_reuse.c \
 *       $(ls core/policy/[a-z]*.c) tests/unit/policy_fakes.c \
 *       $(pkg-config --libs lua5.4) -ljansson -lm -o /tmp/policy_reuse && \
 *   /tmp/policy_reuse
 * (The gateway's per-request figure is larger: between two requests the
 * mock and the client evict the Lua state from the CPU caches.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "policy/policy.h"
#include "policy_fakes.h"

#define CALLS 20000

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* The script with its decide_is_pure line set to `pure`, as a temp file. */
static char *script_copy(const char *path, bool pure)
{
    FILE *f = fopen(path, "rb");
    static char text[1 << 16];
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f)
        fclose(f);
    text[n] = '\0';
    char *at = strstr(text, "decide_is_pure = true");
    if (at != NULL && !pure)
        memcpy(at + strlen("decide_is_pure = "), "false", 5);
    char *out = strdup("/tmp/policy_reuse_XXXXXX.lua");
    int fd = mkstemps(out, 4);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        perror("temp script");
        exit(1);
    }
    close(fd);
    return out;
}

/* ns per call; `vary`: a different header value per call (never reused). */
static double time_calls(const char *path, bool vary)
{
    char err[512], value[32];
    struct policy *p = policy_load(path, NULL, &test_env, err, sizeof err);
    if (p == NULL) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    /* Few enough varied calls that the kept paths never fill the memo. */
    int calls = vary ? 900 : CALLS;
    double start = now_ns();
    for (int i = 0; i < calls; i++) {
        snprintf(value, sizeof value, "p%d", vary ? i : 0);
        struct fake_req r = {.model = "gpt-4o",
                             .tier = "standard",
                             .headers = {{"x-priority", value}}};
        struct policy_req_view v = view_of(&r);
        struct policy_decision d;
        if (policy_decide(p, &v, &d, err, sizeof err) != POLICY_OK) {
            fprintf(stderr, "%s\n", err);
            exit(1);
        }
    }
    double per = (now_ns() - start) / calls;
    policy_free(p);
    return per;
}

int main(int argc, char **argv)
{
    const char *script = argc > 1 ? argv[1] : "policies/default.lua";
    char *pure = script_copy(script, true), *plain = script_copy(script, false);
    printf("%s, ns per decide():\n", script);
    printf("  reused (decide_is_pure)        %7.0f\n", time_calls(pure, false));
    printf("  run by Lua (not pure)          %7.0f\n",
           time_calls(plain, false));
    printf("  run, recorded, state checked   %7.0f\n", time_calls(pure, true));
    unlink(pure);
    unlink(plain);
    free(pure);
    free(plain);
    return 0;
}
