#include "tokens_config.h"

#include <stdio.h>
#include <string.h>

void tokens_config_defaults(struct tokens_config *tc)
{
    memset(tc, 0, sizeof *tc);
    tc->max_bytes = TOK_DEFAULT_MAX_BYTES;
}

bool tokens_config_parse(const json_t *obj, struct tokens_config *tc,
                         char *path, size_t path_len, char *err, size_t err_len)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        if (strcmp(key, "max_bytes") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1024 ||
                json_integer_value(v) > (1 << 30)) {
                snprintf(path, path_len, "tokens.max_bytes");
                snprintf(err, err_len,
                         "must be an integer from 1024 to 1073741824");
                return false;
            }
            tc->max_bytes = (size_t)json_integer_value(v);
        } else if (strcmp(key, "models") == 0) {
            if (!json_is_object(v)) {
                snprintf(path, path_len, "tokens.models");
                snprintf(err, err_len,
                         "must be an object of model -> "
                         "encoding name");
                return false;
            }
            const char *model;
            json_t *enc;
            json_object_foreach(v, model, enc)
            {
                struct tok_model_rules *m = &tc->models;
                int id = json_is_string(enc)
                             ? tok_encoding_lookup(json_string_value(enc),
                                                   json_string_length(enc))
                             : -1;
                snprintf(path, path_len, "tokens.models.%.64s", model);
                if (id < 0) {
                    snprintf(err, err_len,
                             "must be \"o200k_base\" or \"cl100k_base\"");
                    return false;
                }
                if (m->count == TOK_MAX_MODEL_RULES ||
                    strlen(model) >= sizeof m->rule[0].pattern || !*model) {
                    snprintf(err, err_len,
                             "too many models or name too long (at most %d "
                             "names of 1 to 127 bytes)",
                             TOK_MAX_MODEL_RULES);
                    return false;
                }
                snprintf(m->rule[m->count].pattern, sizeof m->rule[0].pattern,
                         "%s", model);
                m->rule[m->count++].encoding = (enum tok_encoding_id)id;
            }
        } else {
            snprintf(path, path_len, "tokens.%.64s", key);
            snprintf(err, err_len, "unknown key (expected max_bytes, models)");
            return false;
        }
    }
    return true;
}
