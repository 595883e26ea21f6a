/* OpenAI-style error bodies: {"error":{"message","type","param","code"}}.
 * Every error a client sees is built here, so the shape never drifts. */
#ifndef SLUICE_OPENAI_ERROR_H
#define SLUICE_OPENAI_ERROR_H

#include <stddef.h>

/* The conventional `type` for an HTTP status ("invalid_request_error",
 * "authentication_error", "rate_limit_error", "api_error", ...). */
const char *openai_error_type_for(int status);

/* Returns a malloc'd NUL-terminated JSON body; *len gets its length.
 * type NULL → openai_error_type_for(status); param/code may be NULL. */
char *openai_error_body(int status, const char *type, const char *message,
                        const char *param, const char *code, size_t *len);

#endif
