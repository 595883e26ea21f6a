/* Unit tests for the guard, rule by rule: each pair that must be refused
 * names the rule that refuses it; paraphrases that keep what matters pass. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "cache_guard.h"

static enum cache_guard_rule g(const char *a, const char *b)
{
    enum cache_guard_rule r1 = cache_guard_check(a, strlen(a), b, strlen(b));
    enum cache_guard_rule r2 = cache_guard_check(b, strlen(b), a, strlen(a));
    assert_int_equal(r1, r2); /* symmetric */
    return r1;
}

static void test_paraphrases_agree(void **unused)
{
    (void)unused;
    assert_int_equal(
        g("What is the capital of France?", "what is the capital of france"),
        CACHE_GUARD_AGREE);
    assert_int_equal(
        g("How do I reset my password?", "How can I reset my password"),
        CACHE_GUARD_AGREE);
    assert_int_equal(g("What is 2 + 2?", "what's 2+2"), CACHE_GUARD_AGREE);
    assert_int_equal(g("It doesn't work", "It does not work"),
                     CACHE_GUARD_AGREE);
    assert_int_equal(g("It can’t start", "It can't start"), CACHE_GUARD_AGREE);
    assert_int_equal(
        g("Explain `git rebase` briefly", "Please explain `git rebase`"),
        CACHE_GUARD_AGREE);
    assert_int_equal(g("Tell me about Paris", "Tell me about paris please"),
                     CACHE_GUARD_AGREE);
    assert_int_equal(g("We have 1,000 users", "we have 1000 users"),
                     CACHE_GUARD_AGREE);
}

static void test_numbers(void **unused)
{
    (void)unused;
    assert_int_equal(g("what is 2+2", "what is 2+3"), CACHE_GUARD_NUMBERS);
    assert_int_equal(g("what is 2+2", "what is 2*2"), CACHE_GUARD_NUMBERS);
    assert_int_equal(g("what is 10-3", "what is 3-10"), CACHE_GUARD_NUMBERS);
    assert_int_equal(g("Convert 3.5 km to miles", "Convert 35 km to miles"),
                     CACHE_GUARD_NUMBERS);
    assert_int_equal(g("Meet at 10:30", "Meet at 10:45"), CACHE_GUARD_NUMBERS);
    assert_int_equal(g("List two fruits", "List three fruits"),
                     CACHE_GUARD_NUMBERS);
    assert_int_equal(g("List two fruits", "List 2 fruits"),
                     CACHE_GUARD_NUMBERS);
    assert_int_equal(g("the 1st item", "the 2nd item"), CACHE_GUARD_NUMBERS);
    assert_int_equal(g("temperature -5 degrees", "temperature 5 degrees"),
                     CACHE_GUARD_NUMBERS);
}

static void test_quotes(void **unused)
{
    (void)unused;
    assert_int_equal(g("Translate \"good morning\" to French",
                       "Translate \"good evening\" to French"),
                     CACHE_GUARD_QUOTES);
    assert_int_equal(
        g("Is the word 'affect' a verb", "Is the word 'effect' a verb"),
        CACHE_GUARD_QUOTES);
    assert_int_equal(g("Spell “colour”", "Spell “color”"), CACHE_GUARD_QUOTES);
    assert_int_equal(g("Define \"cat\"", "Define cat"), CACHE_GUARD_QUOTES);
}

static void test_code(void **unused)
{
    (void)unused;
    assert_int_equal(g("What does `ls -la` do", "What does `ls -lh` do"),
                     CACHE_GUARD_CODE);
    assert_int_equal(
        g("Fix this: ```x = foo(1)```", "Fix this: ```x = bar(1)```"),
        CACHE_GUARD_CODE);
    assert_int_equal(g("what is len(x) in python", "what is len(y) in python"),
                     CACHE_GUARD_CODE);
    assert_int_equal(g("explain my_var naming", "explain my_val naming"),
                     CACHE_GUARD_CODE);
    assert_int_equal(g("how to use os.path", "how to use os.walk"),
                     CACHE_GUARD_CODE);
}

static void test_urls(void **unused)
{
    (void)unused;
    assert_int_equal(
        g("Summarise https://example.com/a", "Summarise https://example.com/b"),
        CACHE_GUARD_URLS);
    assert_int_equal(g("Is www.foo.com safe?", "Is www.bar.com safe?"),
                     CACHE_GUARD_URLS);
    assert_int_equal(g("email alice@example.com", "email bob@example.com"),
                     CACHE_GUARD_URLS);
    assert_int_equal(g("Summarise https://example.com/a.",
                       "Summarise https://example.com/a"),
                     CACHE_GUARD_AGREE); /* trailing punctuation */
}

static void test_negation(void **unused)
{
    (void)unused;
    assert_int_equal(
        g("Should I restart the server", "Should I not restart the server"),
        CACHE_GUARD_NEGATION);
    assert_int_equal(g("do X", "do not do X"), CACHE_GUARD_NEGATION);
    assert_int_equal(g("Is it safe", "Isn't it safe"), CACHE_GUARD_NEGATION);
    assert_int_equal(g("coffee with sugar", "coffee without sugar"),
                     CACHE_GUARD_NEGATION);
    assert_int_equal(g("I never use tabs", "I always use tabs"),
                     CACHE_GUARD_NEGATION);
}

static void test_opposites(void **unused)
{
    (void)unused;
    assert_int_equal(
        g("What is the largest planet", "What is the smallest planet"),
        CACHE_GUARD_OPPOSITES);
    assert_int_equal(g("sort the list ascending", "sort the list descending"),
                     CACHE_GUARD_OPPOSITES);
    assert_int_equal(g("convert to uppercase", "convert to lowercase"),
                     CACHE_GUARD_OPPOSITES);
}

static void test_entities(void **unused)
{
    (void)unused;
    assert_int_equal(
        g("What is the capital of France", "What is the capital of Germany"),
        CACHE_GUARD_ENTITIES);
    assert_int_equal(g("Who founded Apple", "Who founded Microsoft"),
                     CACHE_GUARD_ENTITIES);
    assert_int_equal(g("How do I update my iPhone", "How do I update my iPad"),
                     CACHE_GUARD_ENTITIES);
    assert_int_equal(g("What does NASA do", "What does ESA do"),
                     CACHE_GUARD_ENTITIES);
    assert_int_equal(g("Translate from English to German",
                       "Translate from German to English"),
                     CACHE_GUARD_ENTITIES);
    assert_int_equal(
        g("Is Paris bigger than Rome", "Is Rome bigger than Paris"),
        CACHE_GUARD_ENTITIES);
    assert_int_equal(g("Fly from Paris to Rome", "fly from paris to rome"),
                     CACHE_GUARD_AGREE);
    /* a sentence opener is not a name */
    assert_int_equal(g("Explain photosynthesis", "explain photosynthesis"),
                     CACHE_GUARD_AGREE);
}

static void test_too_long(void **unused)
{
    (void)unused;
    static char big[20000];
    memset(big, 'a', sizeof big - 1);
    assert_int_equal(g(big, "a"), CACHE_GUARD_TOO_LONG);
    assert_string_equal(cache_guard_rule_name(CACHE_GUARD_NEGATION),
                        "negation");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paraphrases_agree),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_quotes),
        cmocka_unit_test(test_code),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_negation),
        cmocka_unit_test(test_opposites),
        cmocka_unit_test(test_entities),
        cmocka_unit_test(test_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
