#include "upstream_curl_request.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool header_named(const char *h, const char *name)
{
    size_t n = strlen(name);
    return strncasecmp(h, name, n) == 0 && h[n] == ':';
}

/* The caller's headers, minus those curl must own (framing, 100-continue),
 * plus "Expect:" (kills 100-continue) and a JSON Content-Type default. */
static struct curl_slist *build_headers(const struct upstream_request *req,
                                        bool has_body)
{
    struct curl_slist *list = NULL, *tmp;
    bool has_type = false;
    for (const char *const *h = req->headers; h && *h; h++) {
        if (header_named(*h, "Expect") || header_named(*h, "Content-Length") ||
            header_named(*h, "Transfer-Encoding"))
            continue;
        has_type = has_type || header_named(*h, "Content-Type");
        if (!(tmp = curl_slist_append(list, *h)))
            goto fail;
        list = tmp;
    }
    if (!(tmp = curl_slist_append(list, "Expect:")))
        goto fail;
    list = tmp;
    if (has_body && !has_type) {
        if (!(tmp = curl_slist_append(list, "Content-Type: application/json")))
            goto fail;
        list = tmp;
    }
    return list;
fail:
    curl_slist_free_all(list);
    return NULL;
}

static bool set_method_and_body(CURL *e, const struct upstream_request *req,
                                struct upstream_request_copy *owned)
{
    const char *method = req->method;
    if (!method)
        method = req->body ? "POST" : "GET";
    bool has_body = strcasecmp(method, "POST") == 0 || req->body_len > 0;

    if (strcasecmp(method, "GET") == 0 && !has_body) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcasecmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
        if (strcasecmp(method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        if (has_body) {
            /* Our own copy: the caller's buffer may go away right now. */
            owned->body = malloc(req->body_len ? req->body_len : 1);
            if (!owned->body)
                return false;
            if (req->body_len)
                memcpy(owned->body, req->body, req->body_len);
            curl_easy_setopt(e, CURLOPT_POST, 1L);
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                             (curl_off_t)req->body_len);
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, owned->body);
        }
    }
    owned->headers = build_headers(req, has_body);
    if (!owned->headers)
        return false;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, owned->headers);
    return true;
}

static void set_transport_options(CURL *e, const struct upstream_request *req,
                                  CURLU *parsed)
{
    if (parsed)
        curl_easy_setopt(e, CURLOPT_CURLU, parsed); /* read-only to curl */
    else
        curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    if (req->connect_timeout_ms)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                         (long)req->connect_timeout_ms);
    /* No CURLOPT_TIMEOUT_MS: a total budget would cut long generations.
     * First-byte and idle timeouts are the client's own timers. */

    bool https = strncasecmp(req->url, "https://", 8) == 0;
    if (req->streaming || !https) {
        /* HTTP/1.1: pausing stops reading the socket, so backpressure
         * reaches the provider (h2 pause has a long bug history). */
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    } else {
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
        curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L); /* share one h2 conn */
    }
}

bool upstream_request_apply(CURL *easy, const struct upstream_request *req,
                            CURLU *parsed, struct upstream_request_copy *owned)
{
    if (!set_method_and_body(easy, req, owned))
        return false;
    set_transport_options(easy, req, parsed);
    return true;
}

void upstream_request_copy_free(struct upstream_request_copy *owned)
{
    curl_slist_free_all(owned->headers);
    free(owned->body);
    owned->headers = NULL;
    owned->body = NULL;
}
