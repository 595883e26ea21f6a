#include "openai_error.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

const char *openai_error_type_for(int status)
{
    switch (status) {
    case 400:
    case 404:
    case 405:
    case 413:
    case 415:
    case 422:
    case 431:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 408:
        return "timeout_error";
    case 429:
        return "rate_limit_error";
    case 504:
        return "timeout_error";
    default:
        return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

char *openai_error_body(int status, const char *type, const char *message,
                        const char *param, const char *code, size_t *len)
{
    json_t *err =
        json_pack("{s:s, s:s, s:o, s:o}", "message", message ? message : "",
                  "type", type ? type : openai_error_type_for(status), "param",
                  param ? json_string(param) : json_null(), "code",
                  code ? json_string(code) : json_null());
    json_t *root = err ? json_pack("{s:o}", "error", err) : NULL;
    char *out = root ? json_dumps(root, JSON_COMPACT) : NULL;

    json_decref(root);
    if (!out) {
        /* Invalid UTF-8 in the message or no memory: still answer in shape. */
        static const char fallback[] =
            "{\"error\":{\"message\":\"internal error\",\"type\":\"api_error\","
            "\"param\":null,\"code\":null}}";
        out = strdup(fallback);
    }
    if (out && len)
        *len = strlen(out);
    return out;
}
