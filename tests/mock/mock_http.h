/* HTTP plumbing shared by the endpoints: JSON request bodies in, JSON
 * replies out. "Counted" replies update the status counters and in_flight
 * of /mock/stats; control endpoints use the uncounted mock_send_json. */
#ifndef SLUICE_MOCK_HTTP_H
#define SLUICE_MOCK_HTTP_H

#include <jansson.h>
#include <stddef.h>

struct evbuffer;
struct evhttp_request;
struct mock_conn;
struct mock_worker;

/* Reason phrase for the status line; evhttp 2.1 lacks some (429). */
const char *mock_reason(int status);
/* The body as a JSON object, or NULL with an OpenAI-style message. */
json_t *mock_read_body(struct evhttp_request *req, char *err, size_t len);
/* Serialises and releases j (NULL buffer only when out of memory). */
struct evbuffer *mock_json_evbuffer(json_t *j);
/* Uncounted reply; takes j. */
void mock_send_json(struct evhttp_request *req, int status, json_t *j);
/* Counted reply, now or after delay_ms (then answered by a mock_call).
 * Takes body. */
void mock_reply(struct mock_worker *w, struct evhttp_request *req,
                struct mock_conn *conn, int status, struct evbuffer *body,
                long delay_ms);
/* Counted OpenAI error reply: type from the status, code
 * rate_limit_exceeded for 429. */
void mock_reply_error(struct mock_worker *w, struct evhttp_request *req,
                      struct mock_conn *conn, int status, const char *msg,
                      const char *param, long delay_ms);
/* Replaces any header of that name. */
void mock_set_header(struct evhttp_request *req, const char *name,
                     const char *value);
void mock_set_header_long(struct evhttp_request *req, const char *name, long v);

#endif
