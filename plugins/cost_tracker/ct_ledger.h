/* The durable ledger: one SQLite row per request (WAL, synchronous=NORMAL:
 * a committed row survives kill -9 of the gateway). A row is written
 * `reserved` at admission with the worst case, then updated to `settled`
 * (actual usage and cost), `released` (no answer, nothing charged) or
 * `charged` (an answer without usage: charged the worst case). Rows still
 * `reserved` at startup belonged to a process that died mid-request: they
 * become `orphaned` and keep their worst case as cost, so a served answer
 * is never missing from the spend. Thread-safe (one connection, a mutex). */
#ifndef CT_LEDGER_H
#define CT_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ct_ledger;

struct ct_text {
    const char *ptr;
    size_t len;
};

/* What admission knows of a request. */
struct ct_ledger_row {
    int64_t ts_ms;
    struct ct_text request_id, tenant, user, key, feature, model, upstream;
    uint64_t reserved; /* pico-USD */
    bool streamed;
};

struct ct_ledger *ct_ledger_open(const char *path, char *err, size_t errlen);
void ct_ledger_close(struct ct_ledger *l);

/* ---- group commit (the request path) ----
 * Writes are queued and committed by the ledger's writer thread, many per
 * transaction. A reservation is durable once ct_ledger_committed(seq): the
 * caller waits for it before the upstream call (wake(ticket) is called on
 * `h` when its batch committed). Settlements are queued without waiting:
 * if the process dies first, the row is still `reserved` and is charged
 * its worst case at the next start. */
struct sluice_host;
/* Returns the batch sequence to wait for (0: not queued, out of memory);
 * *id receives the row id. */
uint64_t ct_ledger_reserve_async(struct ct_ledger *l,
                                 const struct ct_ledger_row *row, int64_t *id,
                                 const struct sluice_host *h, uint64_t ticket);
bool ct_ledger_committed(struct ct_ledger *l, uint64_t seq);
void ct_ledger_settle_async(struct ct_ledger *l, int64_t id, const char *state,
                            const char *model, uint64_t prompt, uint64_t cached,
                            uint64_t completion, uint64_t cost, int64_t now_ms);
/* Waits until everything queued so far is committed (before an instance
 * whose host the queue may wake goes away). */
void ct_ledger_flush(struct ct_ledger *l);
/* Writes the writer thread failed (its rows are lost; counted). */
uint64_t ct_ledger_write_errors(struct ct_ledger *l);

/* Returns the row id (> 0), or 0 when the write failed. */
int64_t ct_ledger_reserve(struct ct_ledger *l, const struct ct_ledger_row *row);
/* state: "settled", "released" or "charged". 0 or -1. */
int ct_ledger_settle(struct ct_ledger *l, int64_t id, const char *state,
                     const char *model, uint64_t prompt, uint64_t cached,
                     uint64_t completion, uint64_t cost, int64_t now_ms);
/* Marks rows left `reserved` by an earlier process `orphaned` (cost = their
 * reservation). Returns how many, or -1. */
int64_t ct_ledger_recover(struct ct_ledger *l);
/* Calls fn for every charged row (cost > 0) admitted at or after since_ms. */
int ct_ledger_scan(struct ct_ledger *l, int64_t since_ms,
                   void (*fn)(void *arg, int64_t ts_ms, const char *tenant,
                              const char *user, const char *key,
                              const char *feature, uint64_t cost),
                   void *arg);

#endif
