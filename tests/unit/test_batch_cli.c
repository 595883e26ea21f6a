/* `sluice batch` pieces: the progress line, the price lookup (dated
 * snapshots priced as their model), checkpoints (round trip, atomic), and
 * reading the input (errors name the line, exact token counts). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/batch_checkpoint.h"
#include "cli/batch_input.h"
#include "cli/batch_prices.h"
#include "cli/batch_progress.h"

static void test_progress_line(void **s)
{
    (void)s;
    struct progress_view v = {.total = 200,
                              .done = 50,
                              .failed = 2,
                              .inflight = 4,
                              .elapsed_s = 10,
                              .done_here = 25,
                              .spend_usd = 0.0125};
    char buf[256];
    progress_format(&v, true, buf, sizeof buf);
    assert_string_equal(buf, "[#####...............] 50/200 25.0% 2.5/s ETA "
                             "1m00s in flight 4 failed 2 spend $0.012500");
    progress_format(&v, false, buf, sizeof buf);
    assert_string_equal(buf, "progress: 50/200 25.0% 2.5/s ETA 1m00s in "
                             "flight 4 failed 2 spend $0.012500");
    v.done_here = 0;
    progress_format(&v, false, buf, sizeof buf);
    assert_non_null(strstr(buf, "ETA ?"));
    enum progress_mode m = PROGRESS_BAR;
    assert_int_equal(progress_mode_parse("plain", &m), 0);
    assert_int_equal(m, PROGRESS_PLAIN);
    assert_int_equal(progress_mode_parse("fancy", &m), -1);
}

static void test_prices(void **s)
{
    (void)s;
    char err[200];
    struct batch_prices *p = batch_prices_load(NULL, err, sizeof err);
    assert_non_null(p);
    struct batch_price pr;
    assert_true(batch_prices_find(p, "gpt-4o-mini", &pr));
    assert_true(pr.input > 0.149 && pr.input < 0.151);
    /* A dated snapshot is priced as its model, not as a shorter prefix. */
    assert_true(batch_prices_find(p, "gpt-4o-mini-2024-07-18", &pr));
    assert_true(pr.output > 0.59 && pr.output < 0.61);
    assert_false(batch_prices_find(p, "gpt-4o-minix", &pr));
    assert_false(batch_prices_find(p, "llama-3", &pr));
    batch_prices_free(p);
    assert_null(batch_prices_load("/nonexistent.json", err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent.json"));
}

static void test_checkpoint_round_trip(void **s)
{
    (void)s;
    char dir[] = "/tmp/test_batch_cli_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[300], tmp[320];
    snprintf(path, sizeof path, "%s/out.checkpoint", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    struct batch_ckpt c = {.input_hash = 0xfedcba9876543210ull,
                           .partial_bytes = 1234,
                           .done = 7,
                           .failed = 1,
                           .prompt_tokens = 99,
                           .completion_tokens = 42,
                           .spend_usd = 0.5};
    struct batch_ckpt back;
    assert_int_equal(batch_ckpt_read(path, &back), 1);
    assert_int_equal(batch_ckpt_write(path, NULL, &c), 0);
    struct stat st;
    assert_int_not_equal(stat(tmp, &st), 0); /* renamed, not left behind */
    assert_int_equal(batch_ckpt_read(path, &back), 0);
    assert_true(back.input_hash == c.input_hash);
    assert_int_equal(back.partial_bytes, 1234);
    assert_int_equal(back.done, 7);
    assert_int_equal(back.failed, 1);
    assert_int_equal(back.completion_tokens, 42);
    FILE *f = fopen(path, "w");
    fputs("{\"torn", f);
    fclose(f);
    assert_int_equal(batch_ckpt_read(path, &back), -1);
    unlink(path);
    rmdir(dir);
}

static char *write_tmp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/test_batch_cli_in_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_input(void **s)
{
    (void)s;
    char err[300];
    struct batch_input in;
    char *p = write_tmp(
        "{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":"
        "\"/v1/chat/completions\",\"body\":{\"model\":\"gpt-4o\","
        "\"max_tokens\":9,\"messages\":[{\"role\":\"user\",\"content\":"
        "\"Hello world\"}]}}\n\n"
        "{\"custom_id\":\"b\",\"method\":\"POST\",\"url\":\"/v1/embeddings\","
        "\"body\":{\"model\":\"text-embedding-3-small\",\"input\":\"hi\"}}\n");
    assert_int_equal(batch_input_load(p, &in, err, sizeof err), 0);
    assert_int_equal(in.count, 2);
    assert_string_equal(in.lines[0].path, "/chat/completions");
    assert_int_equal(in.lines[0].max_output, 9);
    /* "Hello world": 2 tokens + role 1 + 3 per message + 3 priming. */
    assert_int_equal(in.lines[0].input_tokens, 9);
    assert_false(in.lines[0].estimated);
    assert_int_equal(in.lines[1].input_tokens, 1);
    uint64_t hash = in.hash;
    batch_input_free(&in);
    unlink(p);

    p = write_tmp("{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":"
                  "\"/v1/chat/completions\",\"body\":{\"model\":\"m\"}}\n\n"
                  "{\"custom_id\":\"b\",\n");
    assert_int_equal(batch_input_load(p, &in, err, sizeof err), -1);
    assert_non_null(strstr(err, "line 3: is not valid JSON"));
    unlink(p);
    p = write_tmp("{\"custom_id\":\"a\",\"url\":\"/v1/files\",\"body\":{}}\n");
    assert_int_equal(batch_input_load(p, &in, err, sizeof err), -1);
    assert_non_null(strstr(err, "line 1: url must be"));
    unlink(p);
    assert_true(hash != 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_progress_line),
        cmocka_unit_test(test_prices),
        cmocka_unit_test(test_checkpoint_round_trip),
        cmocka_unit_test(test_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
