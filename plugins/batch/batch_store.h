/* Files on disk: <dir>/files/<id>, written to a temporary name, fsync'd,
 * then renamed, so a file either exists whole or not at all. */
#ifndef BATCH_STORE_H
#define BATCH_STORE_H

#include <stddef.h>
#include <stdint.h>

/* 0 ok, -1 error (errno set). */
int batch_store_init(const char *dir);
int batch_store_write(const char *dir, const char *id, const char *data,
                      size_t len);
/* malloc'd contents (NUL added) and *len; NULL when missing. */
char *batch_store_read(const char *dir, const char *id, size_t *len);
int batch_store_remove(const char *dir, const char *id);

/* "file-" + 24 lowercase hex digits from two random words. */
void batch_new_id(char *out, size_t cap, const char *prefix, uint64_t a,
                  uint64_t b);

#endif
