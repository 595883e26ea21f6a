/* GET /v1/models: configured model names merged with what upstreams that
 * serve "*" list at their own /v1/models (asked over the worker's upstream
 * client, kept 60 s per worker, a failed ask retried after 5 s). Names
 * appear once, owned by the first upstream that has them. */
#ifndef SLUICE_MODELS_LIST_H
#define SLUICE_MODELS_LIST_H

struct http_exchange;
struct worker;

/* Answers now, or once the lists being asked for are in. Worker thread. */
void models_list_serve(struct http_exchange *ex, struct worker *w);

#endif
