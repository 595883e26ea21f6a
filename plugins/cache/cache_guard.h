/* cache_guard: would two prompts that look alike get the same answer?
 *
 * Embeddings measure how much two texts share, not whether they ask the
 * same thing: "what is 2+2" and "what is 2+3" are 0.97 apart in many
 * models. The guard vetoes a semantic hit unless the prompts agree on
 * what usually flips an answer (README.md lists the rules with examples):
 *   numbers     the sequence of numbers and arithmetic (2+2, 3.14, 1,000,
 *               10:30, 1st, number words like "two", "half", "dozen")
 *   quotes      text in "..", '..', “..”, ‘..’, «..»
 *   code        `inline`, ```fenced``` and code-looking tokens (f(x),
 *               a_b, a=b, {..}, $VAR, path/like)
 *   urls        http(s)://, www., e-mail addresses
 *   negation    how many negation cues (not, no, never, n't, without, ...)
 *   opposites   words whose opposite flips the answer (most/least,
 *               before/after, max/min, ascending/descending, ...)
 *   entities    capitalised names (Paris, NASA, iPhone) outside a list of
 *               common sentence-openers; each must occur in the other
 *               prompt, in any case, and the names in the same order
 * Pure functions, any thread. */
#ifndef SLUICE_CACHE_GUARD_H
#define SLUICE_CACHE_GUARD_H

#include <stddef.h>

enum cache_guard_rule {
    CACHE_GUARD_AGREE = 0,
    CACHE_GUARD_NUMBERS,
    CACHE_GUARD_QUOTES,
    CACHE_GUARD_CODE,
    CACHE_GUARD_URLS,
    CACHE_GUARD_NEGATION,
    CACHE_GUARD_OPPOSITES,
    CACHE_GUARD_ENTITIES,
    CACHE_GUARD_TOO_LONG, /* more features than the guard tracks */
    CACHE_GUARD_RULES
};

/* The first rule the two texts disagree on, or CACHE_GUARD_AGREE. */
enum cache_guard_rule cache_guard_check(const char *a, size_t alen,
                                        const char *b, size_t blen);
const char *cache_guard_rule_name(enum cache_guard_rule rule);

#endif
