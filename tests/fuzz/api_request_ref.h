/* The jansson-based request decoder the gateway used before jscan_document, as
 * a reference for differential fuzzing (tests/fuzz/fuzz_api_request.c). */
#ifndef SLUICE_API_REQUEST_REF_H
#define SLUICE_API_REQUEST_REF_H

#include <jansson.h>

#include "api_request.h"

/* Same contract as the old api_request_decode(): on success returns the
 * root object (caller decrefs; out->model points into it) and fills out;
 * on failure returns NULL, fills err and zeroes out. */
json_t *ref_api_request_decode(enum api_kind kind, const char *body, size_t len,
                               struct api_request *out, struct api_error *err);

#endif
