#include "tokens/tokens_cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_request.h"
#include "config/config.h"
#include "tokens/model_encoding.h"
#include "tokens/request_count.h"

static const char usage[] =
    "usage: sluice tokens [--model M | --encoding E] [--chat] [--ids]\n"
    "                     [-c CONFIG] [FILE]\n"
    "Counts the tokens of FILE (or stdin) as the gateway does. Plain text\n"
    "by default; --chat reads a chat completions request (JSON) and counts\n"
    "it with the chat framing, taking the model from the request unless\n"
    "--model is given. -c adds the config's tokens.models to the model\n"
    "table. --ids prints the token ids of plain text. Default model:\n"
    "gpt-4o.\n";

static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *bigger = realloc(buf, cap *= 2);
        if (!bigger)
            free(buf);
        buf = bigger;
    }
    if (!buf || ferror(f)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static int print_ids(const struct tok_encoding *e, const char *text, size_t len)
{
    size_t n = tok_count(e, text, len);
    uint32_t *ids = n == (size_t)-1 ? NULL : malloc(sizeof(*ids) * (n + 1));
    if (!ids || tok_encode(e, text, len, ids, n) != n) {
        free(ids);
        fputs("sluice tokens: out of memory\n", stderr);
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        printf(i ? " %u" : "%u", ids[i]);
    printf("\n");
    free(ids);
    return 0;
}

static int count_chat(const char *body, size_t len, const char *model,
                      const struct tok_model_rules *rules)
{
    struct api_request req;
    struct api_error err;
    if (!api_request_decode(API_CHAT, body, len, &req, &err)) {
        fprintf(stderr, "sluice tokens: %s\n", err.message);
        return 1;
    }
    size_t mlen = model ? strlen(model) : req.model_len;
    const char *m = model ? model : req.model;
    enum tok_encoding_id id;
    int rc = 1;
    if (!tok_model_encoding(rules, m, mlen, &id)) {
        fprintf(stderr,
                "sluice tokens: model \"%.*s\" has no known encoding (use "
                "--encoding, or tokens.models in the config with -c)\n",
                (int)mlen, m);
    } else {
        struct tok_request_count c;
        const struct tok_encoding *e = tok_encoding_get(id);
        if (e && tok_count_request(API_CHAT, body, len, e, 0, &c)) {
            printf("%llu\n", (unsigned long long)c.tokens);
            if (c.media_estimated)
                fputs("note: images of unknown size, audio or files are "
                      "estimated\n",
                      stderr);
            rc = 0;
        } else {
            fputs("sluice tokens: out of memory\n", stderr);
        }
    }
    api_request_release(&req);
    return rc;
}

int tokens_cli_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"encoding", required_argument, NULL, 'e'},
        {"chat", no_argument, NULL, 'C'},
        {"ids", no_argument, NULL, 'i'},
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *encoding = NULL, *config_path = NULL;
    bool chat = false, ids = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:e:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 'e':
            encoding = optarg;
            break;
        case 'C':
            chat = true;
            break;
        case 'i':
            ids = true;
            break;
        case 'c':
            config_path = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (argc - optind > 1 || (model && encoding) || (chat && ids)) {
        fputs(usage, stderr);
        return 2;
    }
    struct tok_model_rules rules = {0};
    if (config_path) {
        char err[2048];
        struct config *cfg = config_load(config_path, err, sizeof err);
        if (!cfg) {
            fprintf(stderr, "sluice tokens: %s: %s", config_path, err);
            return 2;
        }
        rules = cfg->tokens.models;
        config_unref(cfg);
    }
    int enc = -1;
    if (encoding &&
        (enc = tok_encoding_lookup(encoding, strlen(encoding))) < 0) {
        fprintf(stderr,
                "sluice tokens: unknown encoding \"%s\" (o200k_base, "
                "cl100k_base)\n",
                encoding);
        return 2;
    }
    FILE *in = stdin;
    if (optind < argc && !(in = fopen(argv[optind], "rb"))) {
        perror(argv[optind]);
        return 1;
    }
    size_t len = 0;
    char *text = read_all(in, &len);
    if (in != stdin)
        fclose(in);
    if (!text) {
        fputs("sluice tokens: cannot read the input\n", stderr);
        return 1;
    }
    int rc;
    if (chat && enc < 0) {
        rc = count_chat(text, len, model, &rules);
    } else {
        enum tok_encoding_id id = (enum tok_encoding_id)enc;
        const char *m = model ? model : "gpt-4o";
        if (enc < 0 && !tok_model_encoding(&rules, m, strlen(m), &id)) {
            fprintf(stderr,
                    "sluice tokens: model \"%s\" has no known encoding (use "
                    "--encoding, or tokens.models in the config with -c)\n",
                    m);
            free(text);
            return 1;
        }
        const struct tok_encoding *e = tok_encoding_get(id);
        if (chat) {
            struct tok_request_count cnt;
            rc =
                e && tok_count_request(API_CHAT, text, len, e, 0, &cnt) ? 0 : 1;
            if (rc == 0)
                printf("%llu\n", (unsigned long long)cnt.tokens);
            else
                fputs("sluice tokens: not a JSON chat request\n", stderr);
        } else if (ids) {
            rc = e ? print_ids(e, text, len) : 1;
        } else {
            size_t n = e ? tok_count(e, text, len) : (size_t)-1;
            rc = n == (size_t)-1;
            if (rc)
                fputs("sluice tokens: out of memory\n", stderr);
            else
                printf("%zu\n", n);
        }
    }
    free(text);
    return rc;
}
