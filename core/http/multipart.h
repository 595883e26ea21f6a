/* multipart/form-data bodies (RFC 7578), read in place: each part's name,
 * filename, content type and data point into the body, nothing is copied.
 * Used by plugins that answer uploads (POST /v1/files) through the host
 * table, so none of them hand-writes a parser.
 */
#ifndef SLUICE_HTTP_MULTIPART_H
#define SLUICE_HTTP_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>

/* Longest header block of one part; more is refused (a part's headers
 * are a few hundred bytes in practice). */
#define MULTIPART_MAX_PART_HEADER 8192
/* RFC 2046 caps boundaries at 70 characters. */
#define MULTIPART_MAX_BOUNDARY 70

struct multipart_span {
    const char *ptr; /* NULL when absent */
    size_t len;
};

struct multipart_part {
    struct multipart_span name;         /* form field name (required) */
    struct multipart_span filename;     /* absent for plain fields */
    struct multipart_span content_type; /* absent when the part has none */
    struct multipart_span data;
};

struct multipart_reader {
    const char *body, *end;
    const char *at; /* start of the next part's headers, NULL when done */
    char delim[MULTIPART_MAX_BOUNDARY + 4]; /* "\r\n--" + boundary */
    size_t delim_len;
};

/* Reads the boundary from a Content-Type value ("multipart/form-data;
 * boundary=..."; quoted or not) and finds the first part. false with
 * *error set (a static string) when the type or the body is not
 * multipart/form-data. */
bool multipart_open(struct multipart_reader *rd, const char *content_type,
                    size_t content_type_len, const char *body, size_t len,
                    const char **error);

/* 1: *out holds the next part; 0: no more parts (the closing delimiter
 * was seen); -1: malformed, *error set. */
int multipart_next(struct multipart_reader *rd, struct multipart_part *out,
                   const char **error);

#endif
