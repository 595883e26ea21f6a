/* Incremental Server-Sent Events parser (WHATWG "event stream
 * interpretation"), specialised for OpenAI streams: it also spots [DONE]
 * and picks the token usage out of the chunks that carry it.
 *
 * Bytes are handled as bytes: CR and LF never occur inside a UTF-8
 * multi-byte sequence, so a sequence split between two feeds simply sits
 * in the line buffer until its line is complete.
 */
#include "sse.h"

#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

struct byte_buf {
    char *p;
    size_t len, cap;
};

struct sse_parser {
    size_t max_event_bytes; /* 0: unlimited */
    struct byte_buf line;   /* incomplete line carried over between feeds */
    struct byte_buf data;   /* data: lines of the current event, LF-joined */
    struct byte_buf event;  /* event: field of the current event */
    size_t block_bytes;     /* bytes since the last blank line, for the cap */
    size_t raw_bytes;       /* bytes since the last dispatched event */
    size_t feed_at;         /* offset reached in the current feed */
    bool skip_lf;           /* previous feed ended in CR: drop a leading LF */
    bool first_line;        /* the stream's first line may start with a BOM */
    bool failed;
    bool saw_done;
    struct sse_usage usage;
};

static bool buf_reserve(struct byte_buf *b, size_t extra)
{
    if (b->cap - b->len > extra)
        return true; /* keeps room for a NUL terminator */
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len <= extra) {
        if (cap > SIZE_MAX / 2)
            return false;
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p)
        return false;
    b->p = p;
    b->cap = cap;
    return true;
}

static bool buf_append(struct byte_buf *b, const char *s, size_t n)
{
    if (!buf_reserve(b, n))
        return false;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return true;
}

/* max_event_bytes 0 means no cap (tests only; the gateway always caps).
 * raw_len of an event also covers comments and data-less blocks seen
 * since the previous event, so the raw_len values add up to the bytes fed
 * (minus an unfinished tail). */
struct sse_parser *sse_parser_new(size_t max_event_bytes)
{
    struct sse_parser *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->max_event_bytes = max_event_bytes;
    p->first_line = true;
    return p;
}

void sse_parser_free(struct sse_parser *p)
{
    if (!p)
        return;
    free(p->line.p);
    free(p->data.p);
    free(p->event.p);
    free(p);
}

struct sse_usage sse_parser_usage(const struct sse_parser *p)
{
    return p->usage;
}

bool sse_parser_saw_done(const struct sse_parser *p)
{
    return p->saw_done;
}

/* ---- usage extraction ---------------------------------------------- */

/* Next `key` (a quoted JSON name, e.g. "\"usage\"") in [s, end), or NULL.
 * memchr on one of its letters that is rare in OpenAI chunks, key[rare]
 * ('g' of usage: 'u' is in every "null" and "chunk"): glibc's memmem sets
 * up a two-way search per call, which cost more than the rest of an
 * event's parse (~900 instructions per event). */
static const char *find_key(const char *s, const char *end, const char *key,
                            size_t klen, size_t rare)
{
    for (const char *p = s + rare; p + (klen - rare) <= end; p++) {
        p = memchr(p, key[rare], (size_t)(end - p));
        if (!p || p + (klen - rare) > end)
            return NULL;
        if (memcmp(p - rare, key, klen) == 0)
            return p - rare;
    }
    return NULL;
}

/* True when some "usage" key in the text is followed by an object. Ordinary
 * chunks either lack the key or carry "usage":null (include_usage streams),
 * and those must not cost a JSON parse. A string value "usage" or a
 * false hit only costs one parse that finds nothing. */
static bool may_carry_usage(const char *s, size_t n)
{
    static const char key[] = "\"usage\"";
    const size_t klen = sizeof(key) - 1;
    const char *end = s + n;
    const char *hit = s;

    while ((hit = find_key(hit, end, key, klen, 4)) != NULL) {
        const char *q = hit + klen;
        while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' ||
                           *q == '\n' || *q == ':'))
            q++;
        if (q < end && *q == '{')
            return true;
        hit += klen;
    }
    return false;
}

/* A top-level "choices": [] (the usage-only chunk of an include_usage
 * stream). Keys inside strings have escaped quotes, so are skipped. */
static const char *skip_space(const char *q, const char *end)
{
    while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
        q++;
    return q;
}

static bool has_empty_choices(const char *s, size_t n)
{
    static const char key[] = "\"choices\"";
    const size_t klen = sizeof(key) - 1;
    const char *end = s + n, *hit = s;
    for (; (hit = find_key(hit, end, key, klen, 2)) != NULL; hit += klen) {
        if (hit > s && hit[-1] == '\\')
            continue;
        const char *q = skip_space(hit + klen, end);
        if (q >= end || *q != ':')
            continue;
        q = skip_space(q + 1, end);
        if (q >= end || *q != '[')
            continue;
        q = skip_space(q + 1, end);
        if (q < end && *q == ']')
            return true;
    }
    return false;
}

/* Only chunks with a "usage" object cost anything: the counters are read
 * by the same one-pass scan as buffered answers, never a full parse (a
 * jansson parse of the usage chunk was ~50k instructions per stream, and
 * with the whole stream in one read it delayed the first byte). */
static void inspect_json_event(struct sse_parser *p, struct sse_event *ev)
{
    if (!may_carry_usage(ev->data, ev->data_len))
        return;
    struct sse_usage u = usage_from_json_body(ev->data, ev->data_len);
    if (!u.known)
        return;
    p->usage = u;
    ev->usage_only = has_empty_choices(ev->data, ev->data_len);
}

/* The object following the last `"usage":` key, or NULL. Inside JSON
 * strings a quote is always escaped, so an unescaped "usage" followed by a
 * colon is a key; OpenAI bodies put it last, so searching backwards finds
 * it without reading the (possibly long) content. The search jumps between
 * 'g's (rare in JSON) with memrchr instead of testing every byte. */
static const char *last_usage_object(const char *s, size_t n)
{
    static const char key[] = "\"usage\"";
    const size_t klen = sizeof(key) - 1, g_at = 4; /* key[4] == 'g' */
    const char *end = s + n;
    if (n < klen)
        return NULL;
    size_t left = n - (klen - 1 - g_at); /* a 'g' past this cannot fit */
    const char *g;
    while (left > g_at && (g = memrchr(s + g_at, 'g', left - g_at)) != NULL) {
        left = (size_t)(g - s);
        const char *hit = g - g_at;
        if (memcmp(hit, key, klen) != 0)
            continue;
        if (hit > s && hit[-1] == '\\')
            continue; /* an escaped quote: inside a string */
        const char *q = hit + klen;
        while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
            q++;
        if (q >= end || *q != ':')
            continue;
        q++;
        while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
            q++;
        if (q < end && *q == '{')
            return q;
    }
    return NULL;
}

/* The usage counters we read; the first occurrence of each key wins. */
enum usage_key {
    UK_PROMPT,
    UK_COMPLETION,
    UK_INPUT,
    UK_OUTPUT,
    UK_TOTAL,
    UK_CACHED,
    UK_COUNT,
};

static const struct {
    const char *name;
    size_t len;
} usage_keys[UK_COUNT] = {
    [UK_PROMPT] = {"prompt_tokens", 13},
    [UK_COMPLETION] = {"completion_tokens", 17},
    [UK_INPUT] = {"input_tokens", 12},
    [UK_OUTPUT] = {"output_tokens", 13},
    [UK_TOTAL] = {"total_tokens", 12},
    [UK_CACHED] = {"cached_tokens", 13},
};

static bool is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The integer after a key's ':' (a negative one counts as 0). */
static bool read_count(const char *p, const char *end, uint64_t *out)
{
    while (p < end && is_json_space(*p))
        p++;
    bool negative = p < end && *p == '-'; /* nonsense, counted as 0 */
    if (negative)
        p++;
    uint64_t v = 0;
    bool digits = false;
    while (p < end && *p >= '0' && *p <= '9' && v < (UINT64_MAX - 9) / 10) {
        v = v * 10 + (uint64_t)(*p++ - '0');
        digits = true;
    }
    if (digits)
        *out = negative ? 0 : v;
    return digits;
}

/* Which counter a key names; UK_COUNT for none. */
static int usage_key_of(const char *key, size_t klen)
{
    if (klen < 12 || klen > 17)
        return UK_COUNT;
    for (int k = 0; k < UK_COUNT; k++)
        if (klen == usage_keys[k].len &&
            memcmp(key, usage_keys[k].name, klen) == 0)
            return k;
    return UK_COUNT;
}

/* The closing quote of the string whose text starts at p, or NULL when it
 * is cut short. memchr to the next quote; only a string with a backslash
 * before it is walked escape by escape. */
static const char *string_end(const char *p, const char *end)
{
    const char *q = memchr(p, '"', (size_t)(end - p));
    if (q && !memchr(p, '\\', (size_t)(q - p)))
        return q;
    while (p < end && *p != '"')
        p += *p == '\\' ? 2 : 1;
    return p < end ? p : NULL;
}

/* One pass over the usage object `{...}`: every member key (nested ones
 * too, for cached_tokens) is compared with the counters we want. False
 * when the object is cut short: then nothing in it can be trusted. */
static bool scan_usage(const char *obj, const char *end, uint64_t *vals,
                       bool *seen)
{
    int depth = 0;
    for (const char *p = obj; p < end; p++) {
        if (*p == '{') {
            depth++;
        } else if (*p == '}') {
            if (--depth == 0)
                return true;
        } else if (*p == '"') {
            const char *key = ++p;
            p = string_end(p, end);
            if (!p)
                return false;
            size_t klen = (size_t)(p - key);
            const char *q = p + 1;
            while (q < end && is_json_space(*q))
                q++;
            if (q >= end || *q != ':')
                continue; /* a string value, not a key */
            int k = usage_key_of(key, klen);
            if (k < UK_COUNT && !seen[k])
                seen[k] = read_count(q + 1, end, &vals[k]);
        }
    }
    return false;
}

struct sse_usage usage_from_json_body(const char *body, size_t len)
{
    struct sse_usage u = {0};
    if (!body)
        return u;
    /* Runs for every non-streamed answer, so it scans only the usage
     * object's few integer fields instead of parsing the whole response
     * with jansson (measured: ~34k instructions per response before). */
    const char *obj = last_usage_object(body, len);
    if (!obj)
        return u;
    uint64_t v[UK_COUNT] = {0};
    bool seen[UK_COUNT] = {0};
    if (!scan_usage(obj, body + len, v, seen))
        return u;
    bool found = seen[UK_PROMPT] || seen[UK_COMPLETION];
    if (found) {
        u.prompt_tokens = v[UK_PROMPT];
        u.completion_tokens = v[UK_COMPLETION];
    } else { /* Responses API naming */
        found = seen[UK_INPUT] || seen[UK_OUTPUT];
        u.prompt_tokens = v[UK_INPUT];
        u.completion_tokens = v[UK_OUTPUT];
    }
    u.total_tokens =
        seen[UK_TOTAL] ? v[UK_TOTAL] : u.prompt_tokens + u.completion_tokens;
    u.cached_tokens = v[UK_CACHED];
    u.known = found || seen[UK_TOTAL];
    return u;
}

/* ---- event stream interpretation ----------------------------------- */

static void reset_event(struct sse_parser *p)
{
    p->data.len = 0;
    p->event.len = 0;
}

/* Reports one event whose data is data[0..len). */
static void emit(struct sse_parser *p, const char *data, size_t len,
                 void (*on_event)(const struct sse_event *, void *), void *arg)
{
    struct sse_event ev = {
        .data = data,
        .data_len = len,
        .event = p->event.len ? p->event.p : NULL,
        .event_len = p->event.len,
        .raw_len = p->raw_bytes,
        .end = p->feed_at,
        .done = len == 6 && memcmp(data, "[DONE]", 6) == 0,
    };
    if (ev.done)
        p->saw_done = true;
    else
        inspect_json_event(p, &ev);
    p->raw_bytes = 0;
    reset_event(p);
    if (on_event)
        on_event(&ev, arg);
}

static void dispatch(struct sse_parser *p,
                     void (*on_event)(const struct sse_event *, void *),
                     void *arg)
{
    /* Per spec an event without any data: line is dropped silently; its
     * bytes are reported with the next event's raw_len. */
    if (p->data.len == 0) {
        reset_event(p);
        return;
    }
    p->data.len--; /* the LF after the last data line */
    emit(p, p->data.p, p->data.len, on_event, arg);
}

static bool field_is(const char *name, size_t n, const char *want)
{
    return strlen(want) == n && memcmp(name, want, n) == 0;
}

/* One complete line, without its terminator. */
static bool process_line(struct sse_parser *p, const char *line, size_t n,
                         void (*on_event)(const struct sse_event *, void *),
                         void *arg)
{
    if (p->first_line) {
        p->first_line = false;
        if (n >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
            line += 3;
            n -= 3;
        }
    }
    if (n == 0) {
        p->block_bytes = 0;
        dispatch(p, on_event, arg);
        return true;
    }
    if (line[0] == ':')
        return true; /* comment, e.g. a keep-alive ": ping" */

    const char *colon = memchr(line, ':', n);
    size_t name_len = colon ? (size_t)(colon - line) : n;
    const char *value = colon ? colon + 1 : line + n;
    size_t value_len = (size_t)(line + n - value);
    if (value_len && value[0] == ' ') {
        value++;
        value_len--;
    }

    if (field_is(line, name_len, "data"))
        return buf_append(&p->data, value, value_len) &&
               buf_append(&p->data, "\n", 1);
    if (field_is(line, name_len, "event")) {
        p->event.len = 0;
        return buf_append(&p->event, value, value_len);
    }
    return true; /* id, retry and unknown fields do not matter here */
}

/* Counts bytes towards the current event and enforces the cap. The cap
 * counts every line end as one byte, so the result does not depend on
 * where a CRLF was split. */
static bool account(struct sse_parser *p, size_t capped, size_t raw)
{
    p->block_bytes += capped;
    p->raw_bytes += raw;
    return p->max_event_bytes == 0 || p->block_bytes <= p->max_event_bytes;
}

/* Offset of the first CR or LF in s[0..n), or n: one pass for both, 16
 * bytes at a time (a memchr for each read a line twice). */
static size_t find_eol(const char *s, size_t n)
{
    size_t i = 0;
#ifdef __SSE2__
    const __m128i lf = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r');
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        int hits = _mm_movemask_epi8(
            _mm_or_si128(_mm_cmpeq_epi8(v, lf), _mm_cmpeq_epi8(v, cr)));
        if (hits)
            return i + (size_t)__builtin_ctz((unsigned)hits);
    }
#endif
    for (; i < n; i++)
        if (s[i] == '\n' || s[i] == '\r')
            return i;
    return n;
}

static bool fail(struct sse_parser *p)
{
    p->failed = true;
    return false;
}

/* The usual event, "data: <one line>\n\n", whole at start and with nothing
 * pending: reported straight from the input, without the per-line
 * buffering of the general path (which it matches byte for byte: same
 * data, raw_len, end and cap). Returns the bytes taken, 0 to fall back. */
static size_t
take_one_line_event(struct sse_parser *p, const char *start, size_t rest,
                    void (*on_event)(const struct sse_event *, void *),
                    void *arg, size_t at)
{
    if (p->line.len || p->data.len || p->event.len || rest < 7 ||
        memcmp(start, "data:", 5) != 0)
        return 0;
    size_t n = 5 + find_eol(start + 5, rest - 5);
    if (n + 2 > rest || start[n] != '\n' || start[n + 1] != '\n')
        return 0;
    const char *lf = start + n;
    /* The cap, as account() would apply it to the line and the blank one. */
    if (p->max_event_bytes && p->block_bytes + n + 2 > p->max_event_bytes)
        return 0;
    p->first_line = false; /* starts with "data:", so there is no BOM */
    p->block_bytes = 0;
    p->raw_bytes += n + 2;
    p->feed_at = at + n + 2;
    const char *value = start + 5;
    if (value < lf && *value == ' ')
        value++;
    emit(p, value, (size_t)(lf - value), on_event, arg);
    return n + 2;
}

bool sse_parser_feed(struct sse_parser *p, const char *data, size_t len,
                     void (*on_event)(const struct sse_event *ev, void *arg),
                     void *arg)
{
    if (p->failed)
        return false;
    size_t i = 0;
    if (p->skip_lf && len > 0) {
        p->skip_lf = false;
        if (data[0] == '\n') {
            /* Second half of a CRLF split across feeds; the event it ended
             * is already dispatched, so this byte counts for the next. */
            p->raw_bytes++;
            i = 1;
        }
    }
    while (i < len) {
        const char *start = data + i;
        size_t rest = len - i;
        size_t taken = take_one_line_event(p, start, rest, on_event, arg, i);
        if (taken) {
            i += taken;
            continue;
        }
        size_t n = find_eol(start, rest);

        if (n == rest) { /* no terminator yet: keep the partial line */
            if (!account(p, rest, rest) || !buf_append(&p->line, start, rest))
                return fail(p);
            return true;
        }
        size_t eol_len = 1;
        if (start[n] == '\r') {
            if (n + 1 < rest)
                eol_len = start[n + 1] == '\n' ? 2 : 1;
            else
                p->skip_lf = true;
        }
        if (!account(p, n + 1, n + eol_len))
            return fail(p);
        i += n + eol_len;
        p->feed_at = i;

        bool ok;
        if (p->line.len) { /* finish the line carried over */
            if (!buf_append(&p->line, start, n))
                return fail(p);
            size_t line_len = p->line.len;
            p->line.len = 0;
            ok = process_line(p, p->line.p, line_len, on_event, arg);
        } else { /* common case: parse straight from the input */
            ok = process_line(p, start, n, on_event, arg);
        }
        if (!ok)
            return fail(p);
    }
    return true;
}
