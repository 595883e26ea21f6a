#include "response_budget.h"

#include <stdatomic.h>

static atomic_size_t in_use;

bool response_budget_take(size_t n, size_t cap)
{
    size_t cur = atomic_load_explicit(&in_use, memory_order_relaxed);
    do {
        if (cap && (cur > cap || n > cap - cur))
            return false;
    } while (!atomic_compare_exchange_weak_explicit(
        &in_use, &cur, cur + n, memory_order_relaxed, memory_order_relaxed));
    return true;
}

void response_budget_release(size_t n)
{
    atomic_fetch_sub_explicit(&in_use, n, memory_order_relaxed);
}

size_t response_budget_in_use(void)
{
    return atomic_load_explicit(&in_use, memory_order_relaxed);
}
