/* Request side of a libcurl upstream call (private to upstream_curl.c): turns
 * a struct upstream_request into options on a curl easy handle. */
#ifndef SLUICE_UPSTREAM_CURL_REQUEST_H
#define SLUICE_UPSTREAM_CURL_REQUEST_H

#include <curl/curl.h>
#include <stdbool.h>

#include "upstream_client.h"

/* What curl points into and the call must keep alive until cleanup. */
struct upstream_request_copy {
    char *body;
    struct curl_slist *headers;
};

/* URL, method, body (copied), headers and transport options. `parsed`
 * is req->url already parsed (CURLOPT_CURLU), or NULL to let curl parse
 * it. On false, whatever was allocated is still in `owned` for the caller
 * to free. */
bool upstream_request_apply(CURL *easy, const struct upstream_request *req,
                            CURLU *parsed, struct upstream_request_copy *owned);
void upstream_request_copy_free(struct upstream_request_copy *owned);

#endif
