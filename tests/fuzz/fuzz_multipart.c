/* libFuzzer target: multipart/form-data reader. Input: a Content-Type
 * value, a newline, then the body. Every part must lie inside the body,
 * carry a name, and its data must not contain the delimiter; reading ends
 * (the reader always moves forward). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/multipart.h"

static void inside(struct multipart_span s, const char *body, size_t len)
{
    if (!s.ptr)
        return;
    if (s.ptr < body || s.ptr + s.len > body + len)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    if (!nl)
        return 0;
    size_t ct_len = (size_t)(nl - (const char *)data);
    /* Own copies, exactly sized, so ASan sees any read past either end. */
    char *ct = malloc(ct_len ? ct_len : 1);
    size_t len = size - ct_len - 1;
    char *body = malloc(len ? len : 1);
    memcpy(ct, data, ct_len);
    memcpy(body, nl + 1, len);

    struct multipart_reader rd;
    const char *error = NULL;
    if (multipart_open(&rd, ct, ct_len, body, len, &error)) {
        struct multipart_part p;
        int rc;
        size_t parts = 0;
        const char *last = NULL;
        while ((rc = multipart_next(&rd, &p, &error)) > 0) {
            inside(p.name, body, len);
            inside(p.filename, body, len);
            inside(p.content_type, body, len);
            inside(p.data, body, len);
            if (!p.name.ptr || !p.data.ptr || p.data.ptr <= last)
                abort();
            last = p.data.ptr;
            if (memmem(p.data.ptr, p.data.len, rd.delim, rd.delim_len))
                abort();
            if (++parts > len)
                abort(); /* no progress */
        }
        if (rc < 0 && !error)
            abort();
    } else if (!error) {
        abort();
    }
    free(ct);
    free(body);
    return 0;
}
