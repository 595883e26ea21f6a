#include "cache_snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define MAGIC "SLUICEC1"
#define NS_PER_MS 1000000ll

struct buf {
    unsigned char *p;
    size_t len, cap;
    bool failed;
};

static void put(struct buf *b, const void *data, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

struct collect {
    struct buf *b;
    uint64_t now_ns;
    int64_t wall_ms;
    uint64_t count;
};

static void add_entry(const struct cache_entry *e, void *arg)
{
    struct collect *c = arg;
    int64_t expires = c->wall_ms + (int64_t)((e->expires_ns - c->now_ns) /
                                             (uint64_t)NS_PER_MS);
    uint32_t len = (uint32_t)e->len;
    put(c->b, e->key, CACHE_KEY_BYTES);
    put(c->b, &expires, sizeof expires);
    put(c->b, &len, sizeof len);
    put(c->b, e->body, e->len);
    c->count++;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int cache_snapshot_write(struct cache_store *s, const char *path, uint64_t seed,
                         uint64_t now_ns, int64_t wall_ms, char *err,
                         size_t errlen)
{
    struct buf b = {0};
    uint64_t zero = 0;
    put(&b, MAGIC, 8);
    put(&b, &seed, sizeof seed);
    put(&b, &zero, sizeof zero); /* the count, filled in below */
    struct collect c = {&b, now_ns, wall_ms, 0};
    cache_store_each(s, now_ns, add_entry, &c);
    if (!b.failed)
        memcpy(b.p + 16, &c.count, sizeof c.count);
    uint64_t sum = b.failed ? 0 : XXH64(b.p, b.len, 0);
    put(&b, &sum, sizeof sum);
    if (b.failed) {
        free(b.p);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        free(b.p);
        snprintf(err, errlen, "path too long");
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = -1;
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
    } else if (write_all(fd, b.p, b.len) || fsync(fd)) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
    } else if (close(fd) == 0 && (fd = -1, rename(tmp, path) == 0)) {
        rc = 0;
    } else {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
    }
    if (fd >= 0)
        close(fd);
    if (rc)
        unlink(tmp);
    free(b.p);
    return rc;
}

static unsigned char *read_file(const char *path, size_t *len, char *err,
                                size_t errlen, int *missing)
{
    *missing = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        *missing = errno == ENOENT;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct buf b = {0};
    unsigned char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        put(&b, chunk, n);
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad || b.failed) {
        free(b.p);
        snprintf(err, errlen, "%s: read failed", path);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

int cache_snapshot_load(struct cache_store *s, const char *path, uint64_t *seed,
                        uint64_t now_ns, int64_t wall_ms, uint64_t max_ttl_ns,
                        size_t *loaded, char *err, size_t errlen)
{
    size_t len = 0;
    int missing;
    unsigned char *p = read_file(path, &len, err, errlen, &missing);
    *loaded = 0;
    if (!p)
        return missing ? 1 : -1;
    uint64_t count, sum;
    int rc = -1;
    if (len < 32 || memcmp(p, MAGIC, 8) != 0) {
        snprintf(err, errlen, "%s: not a cache snapshot", path);
        goto out;
    }
    memcpy(&sum, p + len - 8, 8);
    if (XXH64(p, len - 8, 0) != sum) {
        snprintf(err, errlen, "%s: checksum mismatch (torn or altered)", path);
        goto out;
    }
    memcpy(seed, p + 8, 8);
    memcpy(&count, p + 16, 8);
    size_t at = 24, end = len - 8;
    for (uint64_t i = 0; i < count; i++) {
        int64_t expires;
        uint32_t blen;
        if (end - at < CACHE_KEY_BYTES + 12) {
            snprintf(err, errlen, "%s: truncated entry", path);
            goto out;
        }
        const unsigned char *key = p + at;
        memcpy(&expires, p + at + CACHE_KEY_BYTES, 8);
        memcpy(&blen, p + at + CACHE_KEY_BYTES + 8, 4);
        at += CACHE_KEY_BYTES + 12;
        if (end - at < blen) {
            snprintf(err, errlen, "%s: truncated entry", path);
            goto out;
        }
        if (expires > wall_ms) {
            uint64_t left = (uint64_t)(expires - wall_ms) * NS_PER_MS;
            if (left > max_ttl_ns)
                left = max_ttl_ns;
            if (cache_store_put(s, key, (const char *)p + at, blen, now_ns,
                                left) == 0)
                (*loaded)++;
        }
        at += blen;
    }
    rc = 0;
out:
    free(p);
    return rc;
}
