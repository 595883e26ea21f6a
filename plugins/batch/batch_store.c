/* Files on disk (see batch_store.h). */
#include "batch_store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static void file_path(char *out, size_t cap, const char *dir, const char *id,
                      const char *suffix)
{
    snprintf(out, cap, "%s/files/%s%s", dir, id, suffix);
}

int batch_store_init(const char *dir)
{
    char p[4096];
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -1;
    snprintf(p, sizeof p, "%s/files", dir);
    if (mkdir(p, 0700) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

static int sync_dir(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/files", dir);
    int fd = open(p, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int batch_store_write(const char *dir, const char *id, const char *data,
                      size_t len)
{
    char tmp[4096], dst[4096];
    file_path(tmp, sizeof tmp, dir, id, ".tmp");
    file_path(dst, sizeof dst, dir, id, "");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            unlink(tmp);
            return -1;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, dst) != 0) {
        unlink(tmp);
        return -1;
    }
    return sync_dir(dir);
}

char *batch_store_read(const char *dir, const char *id, size_t *len)
{
    char p[4096];
    file_path(p, sizeof p, dir, id, "");
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    struct stat st;
    char *buf = NULL;
    if (fstat(fileno(f), &st) == 0 && (buf = malloc((size_t)st.st_size + 1))) {
        size_t got = fread(buf, 1, (size_t)st.st_size, f);
        buf[got] = '\0';
        *len = got;
    }
    fclose(f);
    return buf;
}

int batch_store_remove(const char *dir, const char *id)
{
    char p[4096];
    file_path(p, sizeof p, dir, id, "");
    return unlink(p) == 0 || errno == ENOENT ? 0 : -1;
}

void batch_new_id(char *out, size_t cap, const char *prefix, uint64_t a,
                  uint64_t b)
{
    snprintf(out, cap, "%s%016" PRIx64 "%08" PRIx64, prefix, a,
             b & 0xffffffffu);
}
