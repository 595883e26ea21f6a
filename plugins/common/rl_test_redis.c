#include "rl_test_redis.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool rl_test_redis_available(void)
{
    return system("command -v redis-server >/dev/null 2>&1") == 0;
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

int rl_test_redis_command(struct rl_test_redis *s, const char *cmd)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
    int rc = -1;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, cmd);
        if (r && r->type != REDIS_REPLY_ERROR)
            rc = 0;
        freeReplyObject(r);
    }
    redisFree(c);
    return rc;
}

int rl_test_redis_start(struct rl_test_redis *s)
{
    if (!s->dir[0]) {
        snprintf(s->dir, sizeof s->dir, "/tmp/sluice-redis-XXXXXX");
        if (!mkdtemp(s->dir))
            return -1;
    }
    if (!s->port && (s->port = free_port()) <= 0)
        return -1;
    snprintf(s->url, sizeof s->url, "redis://127.0.0.1:%d", s->port);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        char port[16];
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* no orphan if the test dies */
        snprintf(port, sizeof port, "%d", s->port);
        int devnull = open("/dev/null", 1);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execlp("redis-server", "redis-server", "--port", port, "--bind",
               "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", s->dir,
               (char *)NULL);
        _exit(127);
    }
    s->pid = pid;
    for (uint64_t end = mono_ms() + 5000; mono_ms() < end;) {
        if (rl_test_redis_command(s, "PING") == 0)
            return 0;
        usleep(10000);
    }
    rl_test_redis_kill(s);
    return -1;
}

void rl_test_redis_kill(struct rl_test_redis *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGCONT);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

void rl_test_redis_freeze(struct rl_test_redis *s, bool frozen)
{
    if (s->pid > 0)
        kill(s->pid, frozen ? SIGSTOP : SIGCONT);
}

void rl_test_redis_cleanup(struct rl_test_redis *s)
{
    char cmd[128];
    rl_test_redis_kill(s);
    if (s->dir[0]) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", s->dir);
        s->dir[0] = '\0';
    }
}

bool rl_test_loop_until(struct event_base *base, bool (*done)(void *),
                        void *arg, unsigned timeout_ms)
{
    uint64_t end = mono_ms() + timeout_ms;
    while (!done(arg) && mono_ms() < end) {
        struct timeval tv = {0, 1000};
        event_base_loopexit(base, &tv);
        event_base_loop(base, EVLOOP_ONCE);
    }
    return done(arg);
}

void rl_test_loop_for(struct event_base *base, unsigned ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}
