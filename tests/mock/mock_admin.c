#include "mock_admin.h"

#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock_http.h"
#include "mock_openai.h"
#include "mock_server.h"

#define ERR_LEN 512

/* count and capacity_* are control keys; the rest are per-request knobs.
 * Knobs (or a count) replace the global knob set; a capacity-only POST
 * leaves it alone. On error returns -1 with the offending key. */
static int apply_config(struct mock_app *app, const json_t *body,
                        const char **key, char *err, size_t len)
{
    const json_t *count = json_object_get(body, "count");
    const json_t *rps = json_object_get(body, "capacity_rps");
    const json_t *tpm = json_object_get(body, "capacity_tpm");
    bool has_count = count && !json_is_null(count);
    bool has_rps = rps && !json_is_null(rps);
    bool has_tpm = tpm && !json_is_null(tpm);
    if ((has_count &&
         (!json_is_integer(count) || json_integer_value(count) < 1)) ||
        (has_rps && (!json_is_number(rps) || json_number_value(rps) < 0)) ||
        (has_tpm && (!json_is_number(tpm) || json_number_value(tpm) < 0))) {
        snprintf(err, len,
                 "count must be an integer >= 1; capacity_rps and "
                 "capacity_tpm numbers >= 0");
        return -1;
    }

    json_t *knobs = json_deep_copy(body);
    json_object_del(knobs, "count");
    json_object_del(knobs, "capacity_rps");
    json_object_del(knobs, "capacity_tpm");
    struct mock_faults f = {0};
    int rc = mock_faults_from_json(knobs, &f, key, err, len);
    if (rc == 0 && (f.set || has_count))
        mock_control_set(&app->control, &f,
                         has_count ? (long)json_integer_value(count) : -1);
    if (rc == 0 && (has_rps || has_tpm))
        mock_capacity_configure(&app->capacity,
                                has_rps ? json_number_value(rps) : -1,
                                has_tpm ? json_number_value(tpm) : -1);
    if (rc)
        *key = NULL; /* it pointed into knobs */
    json_decref(knobs);
    return rc;
}

static void control_config(struct mock_worker *w, struct evhttp_request *req)
{
    struct mock_app *app = w->app;
    if (evhttp_request_get_command(req) == EVHTTP_REQ_POST) {
        char err[ERR_LEN];
        const char *key = NULL;
        json_t *body = mock_read_body(req, err, sizeof(err));
        if (!body || apply_config(app, body, &key, err, sizeof(err))) {
            mock_send_json(
                req, 400,
                mock_error_json(err, "invalid_request_error", key, NULL));
            json_decref(body);
            return;
        }
        if (!app->opt.quiet) {
            char *s = json_dumps(body, JSON_COMPACT);
            fprintf(stderr, "sluice-mock: config %s\n", s ? s : "?");
            free(s);
        }
        json_decref(body);
    }
    double rps, tpm;
    mock_capacity_get(&app->capacity, &rps, &tpm);
    json_t *o = mock_control_json(&app->control);
    json_object_set_new(o, "capacity_rps", json_real(rps));
    json_object_set_new(o, "capacity_tpm", json_real(tpm));
    mock_send_json(req, 200, o);
}

static void control_reset(struct mock_worker *w, struct evhttp_request *req)
{
    struct mock_app *app = w->app;
    mock_control_clear(&app->control);
    mock_capacity_configure(&app->capacity, app->opt.capacity_rps,
                            app->opt.capacity_tpm);
    mock_stats_reset(&app->stats);
    if (!app->opt.quiet)
        fprintf(stderr, "sluice-mock: reset\n");
    mock_send_json(req, 200, json_pack("{s:b}", "reset", 1));
}

void mock_admin_handle(struct mock_worker *w, struct evhttp_request *req,
                       const char *path)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (!strcmp(path, "/mock/stats") && m == EVHTTP_REQ_GET) {
        mock_send_json(req, 200, mock_stats_json(&w->app->stats));
        return;
    }
    bool config = !strcmp(path, "/mock/config") &&
                  (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_POST);
    bool reset = !strcmp(path, "/mock/reset") && m == EVHTTP_REQ_POST;
    if (!config && !reset) {
        mock_send_json(
            req, 404,
            mock_error_json("Unknown mock control endpoint (use GET "
                            "/mock/stats, GET|POST /mock/config, POST "
                            "/mock/reset).",
                            "invalid_request_error", NULL, NULL));
        return;
    }
    mock_stats_add(&w->app->stats.control, 1);
    if (config)
        control_config(w, req);
    else
        control_reset(w, req);
}
