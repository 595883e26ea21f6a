/* Reads "A<TAB>B" lines on stdin and prints the guard's verdict for each
 * pair ("agree" or the rule that refused it), one per line: the
 * evaluation script (run_eval.py) combines it with the similarities. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cache_guard.h"

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        if (line[n - 1] == '\n')
            line[--n] = '\0';
        char *tab = strchr(line, '\t');
        if (!tab) {
            puts("error");
            continue;
        }
        size_t alen = (size_t)(tab - line);
        puts(cache_guard_rule_name(
            cache_guard_check(line, alen, tab + 1, (size_t)n - alen - 1)));
    }
    free(line);
    return 0;
}
