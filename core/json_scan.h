/* A strict single-pass JSON validator over a byte buffer, and a cursor to
 * read the validated document without building a tree.
 *
 * jscan_document() accepts and rejects exactly what jansson's
 * json_loadb(buf, len, JSON_REJECT_DUPLICATES, ...) does (jansson 2.14):
 * RFC 8259 grammar with an object or array at the top; UTF-8 validated
 * everywhere; "\u0000" refused in strings and keys; duplicate keys refused
 * in every object (compared after unescaping); integers must fit in
 * int64_t and reals must not overflow a double; at most 2048 nested
 * values (a scalar inside 2048 arrays is too deep). It also reproduces
 * jansson's error ordering, text and line/column, so a caller can report
 * the same message jansson would have.
 *
 * Scanning allocates nothing for ordinary documents: state lives in the
 * jscan_doc and on the stack, with heap growth only for deep nesting,
 * objects with many keys and documents with many long values.
 *
 * After a successful scan the jscan_iter functions walk the document. They
 * trust it (it was validated), skip whitespace, and jump over long strings
 * and containers through an index the scan recorded, so reading a few
 * members of a large document costs little more than its key count.
 */
#ifndef SLUICE_JSON_SCAN_H
#define SLUICE_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSCAN_MAX_DEPTH 2048 /* jansson's JSON_PARSER_MAX_DEPTH */

enum jscan_type {
    JSCAN_NONE = 0, /* absent (a member that is not there) */
    JSCAN_OBJECT,
    JSCAN_ARRAY,
    JSCAN_STRING,
    JSCAN_INTEGER, /* no fraction, no exponent; fits in int64_t */
    JSCAN_REAL,
    JSCAN_TRUE,
    JSCAN_FALSE,
    JSCAN_NULL,
};

enum jscan_status {
    JSCAN_OK = 0,
    JSCAN_SYNTAX, /* not JSON (or not what jansson accepts) */
    JSCAN_UTF8,   /* invalid UTF-8 */
    JSCAN_NOMEM,
};

struct jscan_error {
    enum jscan_status status;
    int line;       /* from 1 */
    int column;     /* characters consumed on that line, jansson's way */
    size_t offset;  /* bytes consumed when the error was found */
    char text[160]; /* jansson's wording, e.g. "'}' expected near ','" */
};

/* One entry of the skip index: a long string value or container. */
struct jscan_span {
    size_t pos, end; /* [pos, end) in the buffer */
    size_t len;      /* strings: decoded bytes */
    bool escaped;    /* strings: contains backslash escapes */
};

#define JSCAN_INLINE_SPANS 32

struct jscan_doc {
    const char *buf;
    size_t len;
    size_t root;              /* offset of the top-level '{' or '[' */
    struct jscan_span *spans; /* sorted by pos */
    size_t nspans, span_cap;
    struct jscan_span inline_spans[JSCAN_INLINE_SPANS];
};

/* A value inside a scanned document. */
struct jscan_val {
    enum jscan_type type;
    bool escaped;    /* strings: has backslash escapes */
    size_t pos, end; /* raw text [pos, end), quotes and brackets included */
    size_t len;      /* strings: length in decoded bytes */
    size_t inner;    /* internal: the first skip index entry inside */
};

struct jscan_iter {
    const struct jscan_doc *doc;
    size_t pos;
    size_t span; /* next skip index entry to consider */
    bool object;
};

/* Validates buf (len bytes). On success fills doc (release it with
 * jscan_doc_free) and returns JSCAN_OK; otherwise fills err, leaves
 * nothing to free and returns the error's status. buf must outlive doc. */
enum jscan_status jscan_document(struct jscan_doc *doc, const char *buf,
                                 size_t len, struct jscan_error *err);
void jscan_doc_free(struct jscan_doc *doc);

/* The top-level value (an object or an array). */
void jscan_doc_root(const struct jscan_doc *doc, struct jscan_val *out);

/* Walks the members of an object or the elements of an array. For arrays
 * pass key = NULL. Returns false after the last one. */
void jscan_iter_begin(struct jscan_iter *it, const struct jscan_doc *doc,
                      const struct jscan_val *container);
bool jscan_iter_next(struct jscan_iter *it, struct jscan_val *key,
                     struct jscan_val *val);

/* Finds member `name` (name_len bytes, compared with the decoded key) of
 * an object. Returns false, out->type = JSCAN_NONE, when absent. */
bool jscan_object_find(const struct jscan_doc *doc, const struct jscan_val *obj,
                       const char *name, size_t name_len,
                       struct jscan_val *out);

/* Whether a string value decodes to exactly name (name_len bytes). */
bool jscan_string_equals(const struct jscan_doc *doc, const struct jscan_val *s,
                         const char *name, size_t name_len);
/* Writes the s->len decoded bytes of a string value to out (no NUL). */
void jscan_string_decode(const struct jscan_doc *doc, const struct jscan_val *s,
                         char *out);
/* Unescaped strings: their bytes, in place (s->len of them). */
const char *jscan_string_raw(const struct jscan_doc *doc,
                             const struct jscan_val *s);

/* An integer's value. */
int64_t jscan_integer_get(const struct jscan_doc *doc,
                          const struct jscan_val *v);
/* A number's value as a double, as jansson's json_number_value() gives it
 * (strtod for reals). */
double jscan_number_get(const struct jscan_doc *doc, const struct jscan_val *v);

#endif
