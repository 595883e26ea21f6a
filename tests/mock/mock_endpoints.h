/* The OpenAI endpoints: /v1/chat/completions, /v1/completions,
 * /v1/responses, /v1/embeddings and /v1/models. Each resolves the fault
 * knobs, passes the hidden capacity, then answers now, later, as a
 * stream, or never. `num` numbers the ids of the response. */
#ifndef SLUICE_MOCK_ENDPOINTS_H
#define SLUICE_MOCK_ENDPOINTS_H

struct evhttp_request;
struct mock_conn;
struct mock_worker;

typedef void (*mock_handler_fn)(struct mock_worker *w,
                                struct evhttp_request *req,
                                struct mock_conn *conn, unsigned long num);

void mock_handle_chat(struct mock_worker *w, struct evhttp_request *req,
                      struct mock_conn *conn, unsigned long num);
void mock_handle_completions(struct mock_worker *w, struct evhttp_request *req,
                             struct mock_conn *conn, unsigned long num);
void mock_handle_responses(struct mock_worker *w, struct evhttp_request *req,
                           struct mock_conn *conn, unsigned long num);
void mock_handle_embeddings(struct mock_worker *w, struct evhttp_request *req,
                            struct mock_conn *conn, unsigned long num);
void mock_handle_models(struct mock_worker *w, struct evhttp_request *req,
                        struct mock_conn *conn, unsigned long num);

#endif
