/* sluice-mock entry point: options, listeners, worker threads, signals.
 * Workers run independent event loops; the main thread only waits for
 * SIGINT/SIGTERM and then stops them through a pipe every loop watches. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mock.h"
#include "mock_server.h"

#define MAX_THREADS 64

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sluice-mock [--listen HOST:PORT] [--threads N]\n"
            "                   [--latency-ms N] [--chunk-interval-ms N] "
            "[--chunks N]\n"
            "                   [--capacity-rps N] [--capacity-tpm N] "
            "[--seed N] [--quiet]\n"
            "An OpenAI-compatible mock provider (see tests/mock/README.md).\n"
            "Default listen address: %s; port 0 picks a free port.\n",
            MOCK_DEFAULT_LISTEN);
}

static int parse_number(const char *name, const char *s, double min, double max,
                        double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < min || v > max) {
        fprintf(stderr, "sluice-mock: --%s: expected a number in [%g, %g]\n",
                name, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_options(int argc, char **argv, struct mock_options *o)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"threads", required_argument, NULL, 't'},
        {"latency-ms", required_argument, NULL, 'L'},
        {"chunk-interval-ms", required_argument, NULL, 'i'},
        {"chunks", required_argument, NULL, 'c'},
        {"capacity-rps", required_argument, NULL, 'r'},
        {"capacity-tpm", required_argument, NULL, 'm'},
        {"seed", required_argument, NULL, 's'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->listen = MOCK_DEFAULT_LISTEN;
    o->threads = 1;
    o->seed = MOCK_DEFAULT_SEED;
    struct mock_faults *d = &o->defaults;
    int ch;
    double v;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        const char *name = "option";
        for (const struct option *lo = longopts; lo->name; lo++)
            if (lo->val == ch)
                name = lo->name;
        switch (ch) {
        case 'l':
            o->listen = optarg;
            continue;
        case 'q':
            o->quiet = true;
            continue;
        case 'h':
            usage(stdout);
            exit(0);
        case '?':
            usage(stderr);
            return -1;
        case 's': {
            char *end;
            errno = 0;
            o->seed = strtoull(optarg, &end, 0);
            if (errno || end == optarg || *end) {
                fprintf(stderr, "sluice-mock: --seed: expected an integer\n");
                return -1;
            }
            continue;
        }
        }
        if (parse_number(name, optarg, 0, 3600000, &v))
            return -1;
        switch (ch) {
        case 't':
            if (v < 1 || v > MAX_THREADS) {
                fprintf(stderr, "sluice-mock: --threads: 1..%d\n", MAX_THREADS);
                return -1;
            }
            o->threads = (int)v;
            break;
        case 'L':
            d->latency_ms = (long)v;
            d->set |= MOCK_LATENCY_MS;
            break;
        case 'i':
            d->chunk_interval_ms = (long)v;
            d->set |= MOCK_CHUNK_INTERVAL_MS;
            break;
        case 'c':
            if (v < 1 || v > 100000) {
                fprintf(stderr, "sluice-mock: --chunks: 1..100000\n");
                return -1;
            }
            d->chunks = (long)v;
            d->set |= MOCK_CHUNKS;
            break;
        case 'r':
            o->capacity_rps = v;
            break;
        case 'm':
            o->capacity_tpm = v;
            break;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sluice-mock: unexpected argument '%s'\n",
                argv[optind]);
        return -1;
    }
    return 0;
}

/* "127.0.0.1:8089", "[::1]:0", ":8089" (all interfaces), "localhost:0". */
static struct addrinfo *resolve_listen(const char *spec)
{
    char host[256];
    const char *port;
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (!close || close[1] != ':' ||
            (size_t)(close - spec - 1) >= sizeof(host))
            return NULL;
        memcpy(host, spec + 1, (size_t)(close - spec - 1));
        host[close - spec - 1] = '\0';
        port = close + 2;
    } else {
        const char *colon = strrchr(spec, ':');
        if (!colon || (size_t)(colon - spec) >= sizeof(host))
            return NULL;
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = '\0';
        port = colon + 1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host[0] ? host : NULL, port, &hints, &res))
        return NULL;
    return res;
}

static void format_addr(const struct sockaddr_storage *ss, char *buf,
                        size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        port = ntohs(a->sin6_port);
        snprintf(buf, len, "[%s]:%u", ip, port);
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        port = ntohs(a->sin_port);
        snprintf(buf, len, "%s:%u", ip, port);
    }
}

/* Binds every worker: the first on the requested address, the others on
 * the port it got (so port 0 works with several threads). */
static int bind_workers(struct mock_worker *workers, int n,
                        const struct addrinfo *ai, char *shown, size_t len)
{
    struct sockaddr_storage addr, bound;
    memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
    for (int i = 0; i < n; i++) {
        if (mock_worker_listen(&workers[i], (struct sockaddr *)&addr,
                               ai->ai_addrlen, &bound)) {
            perror("sluice-mock: bind");
            return -1;
        }
        if (i == 0) {
            in_port_t port = bound.ss_family == AF_INET6
                                 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                 : ((struct sockaddr_in *)&bound)->sin_port;
            if (addr.ss_family == AF_INET6)
                ((struct sockaddr_in6 *)&addr)->sin6_port = port;
            else
                ((struct sockaddr_in *)&addr)->sin_port = port;
            format_addr(&bound, shown, len);
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct mock_app app;
    if (parse_options(argc, argv, &app.opt))
        return 2;
    mock_control_init(&app.control);
    mock_capacity_init(&app.capacity, app.opt.capacity_rps,
                       app.opt.capacity_tpm);
    atomic_init(&app.next_id, 0);

    /* Signals go to the main thread only (sigwait); a client that hangs
     * up mid-write must not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    int stop[2];
    struct addrinfo *ai = resolve_listen(app.opt.listen);
    if (!ai) {
        fprintf(stderr, "sluice-mock: cannot resolve --listen %s\n",
                app.opt.listen);
        return 2;
    }
    if (pipe2(stop, O_CLOEXEC)) {
        perror("sluice-mock: pipe");
        return 1;
    }
    int n = app.opt.threads, rc = 0, started = 0;
    struct mock_worker *workers = calloc((size_t)n, sizeof(*workers));
    char shown[INET6_ADDRSTRLEN + 16];
    for (int i = 0; workers && i < n && !rc; i++)
        rc = mock_worker_init(&workers[i], &app, stop[0]);
    if (!workers || rc || bind_workers(workers, n, ai, shown, sizeof(shown))) {
        fprintf(stderr, "sluice-mock: cannot start on %s\n", app.opt.listen);
        rc = 1;
    }
    freeaddrinfo(ai);

    for (int i = 0; !rc && i < n; i++, started++)
        if (pthread_create(&workers[i].thread, NULL, mock_worker_run,
                           &workers[i]))
            rc = 1;
    if (!rc) {
        printf("sluice-mock listening on %s\n", shown);
        fflush(stdout);
        if (!app.opt.quiet)
            fprintf(stderr,
                    "sluice-mock: %d thread(s), capacity %g rps / %g tpm\n", n,
                    app.opt.capacity_rps, app.opt.capacity_tpm);
        int sig;
        sigwait(&sigs, &sig);
        if (!app.opt.quiet)
            fprintf(stderr, "sluice-mock: signal %d, stopping\n", sig);
    }
    if (write(stop[1], "x", 1) < 0)
        perror("sluice-mock: stop");
    for (int i = 0; i < started; i++)
        pthread_join(workers[i].thread, NULL);
    for (int i = 0; workers && i < n; i++)
        mock_worker_free(&workers[i]);
    free(workers);
    close(stop[0]);
    close(stop[1]);
    mock_capacity_destroy(&app.capacity);
    mock_control_destroy(&app.control);
    libevent_global_shutdown();
    return rc;
}
