/* Tests only: a private redis-server on a free port in a temp dir, and a
 * helper that runs a libevent loop until a condition holds. */
#ifndef RL_TEST_REDIS_H
#define RL_TEST_REDIS_H

#include <stdbool.h>
#include <sys/types.h>

struct event_base;

struct rl_test_redis {
    pid_t pid;
    int port;
    char dir[64];
    char url[64];
};

/* True when redis-server is on PATH (tests skip with a message if not). */
bool rl_test_redis_available(void);
/* Starts (or restarts on the same port) and waits until it answers PING.
 * Returns 0 or -1. */
int rl_test_redis_start(struct rl_test_redis *s);
/* SIGKILL, like a crash. */
void rl_test_redis_kill(struct rl_test_redis *s);
/* SIGSTOP / SIGCONT: a server that accepts but never answers. */
void rl_test_redis_freeze(struct rl_test_redis *s, bool frozen);
/* Kills and removes the temp dir. */
void rl_test_redis_cleanup(struct rl_test_redis *s);
/* Runs flush commands synchronously (FLUSHALL etc.); 0 on success. */
int rl_test_redis_command(struct rl_test_redis *s, const char *cmd);

/* Runs the loop until done(arg) or timeout_ms pass; returns done(arg). */
bool rl_test_loop_until(struct event_base *base, bool (*done)(void *),
                        void *arg, unsigned timeout_ms);
/* Runs the loop for ms milliseconds. */
void rl_test_loop_for(struct event_base *base, unsigned ms);

#endif
