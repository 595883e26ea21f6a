/* A small multipart/form-data splitter for the mock's file uploads. */
#ifndef SLUICE_MOCK_MULTIPART_H
#define SLUICE_MOCK_MULTIPART_H

#include <stddef.h>

struct mock_part {
    char name[64];
    char filename[128];
    const char *data; /* points into the body */
    size_t len;
};

/* Splits `body` by the boundary of `content_type`; returns the number of
 * parts found (0 when it is not multipart/form-data). */
size_t mock_multipart_parse(const char *content_type, const char *body,
                            size_t len, struct mock_part *parts, size_t max);

#endif
