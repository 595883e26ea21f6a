/* The Redis twins of sw_core.c: one script call per decision, Redis's
 * TIME as the only clock. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

#include "../common/rl_redis.h"
#include "sw_core.h"

/* KEYS[1]: a list of admission times in us, newest first (at most N, 2N
 * with reservations). ARGV: op ("take" | "release"), limit, window_us,
 * allowance_us, slot_us (release). Expired times are popped from the old
 * end first, so each is touched once. Reply: {verdict, wait_us,
 * remaining, reset_us, slot_us}; verdict 0 deny, 1 allow, 2 reserved. */
const char sw_redis_exact_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local op, n, w, allow = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), "
    "tonumber(ARGV[4])\n"
    "if op == 'release' then\n"
    "  redis.call('LREM', KEYS[1], 1, ARGV[5])\n"
    "  return 1\n"
    "end\n"
    "while true do\n"
    "  local oldest = redis.call('LINDEX', KEYS[1], -1)\n"
    "  if not oldest or tonumber(oldest) + w > now then break end\n"
    "  redis.call('RPOP', KEYS[1])\n"
    "end\n"
    "local len = redis.call('LLEN', KEYS[1])\n"
    "local at = now\n"
    "if len >= n then\n"
    "  local edge = tonumber(redis.call('LINDEX', KEYS[1], -(len - n + 1))) "
    "+ w\n"
    "  if edge > at then at = edge end\n"
    "end\n"
    "local wait, verdict, slot = at - now, 0, 0\n"
    "if wait == 0 then verdict = 1 elseif wait <= allow and len < 2 * n then "
    "verdict = 2 end\n"
    "if verdict > 0 then\n"
    "  local newest = tonumber(redis.call('LINDEX', KEYS[1], 0) or 0)\n"
    "  slot = math.max(at, newest)\n"
    "  redis.call('LPUSH', KEYS[1], string.format('%d', slot))\n"
    "  len = len + 1\n"
    "end\n"
    "local reset = 0\n"
    "if len > 0 then\n"
    "  reset = tonumber(redis.call('LINDEX', KEYS[1], 0)) + w - now\n"
    "  redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000) + 1)\n"
    "end\n"
    "local remaining = n - len\n"
    "if remaining < 0 then remaining = 0 end\n"
    "return {verdict, wait, remaining, reset, slot}\n";

/* KEYS[1]: a hash {w: index of the current fixed window, p: previous
 * window's count, c: current count}. ARGV: op, limit, window_us,
 * allowance_us. The previous count is weighted by the share of it the
 * rolling window still covers. Reply as above (slot 0). */
const char sw_redis_approx_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local n, w, allow = tonumber(ARGV[2]), tonumber(ARGV[3]), "
    "tonumber(ARGV[4])\n"
    "local f = redis.call('HMGET', KEYS[1], 'w', 'p', 'c')\n"
    "local win, prev, curr = tonumber(f[1]) or 0, tonumber(f[2]) or 0, "
    "tonumber(f[3]) or 0\n"
    "local idx = math.floor(now / w)\n"
    "local e = now - idx * w\n"
    "if e < 0 then idx, e = idx - 1, e + w elseif e >= w then idx, e = idx + "
    "1, e - w end\n"
    "if idx < win then\n"
    "  idx, e = win, 0\n"
    "elseif idx > win then\n"
    "  if idx == win + 1 then prev = curr else prev = 0 end\n"
    "  curr, win = 0, idx\n"
    "end\n"
    "local budget, used = n * w, prev * (w - e) + curr * w\n"
    "local verdict, wait = 1, 0\n"
    "if used + w <= budget then\n"
    "  curr, used = curr + 1, used + w\n"
    "else\n"
    "  if curr + 1 <= n and prev > 0 then\n"
    "    wait = w - math.floor((n - curr - 1) * w / prev) - e\n"
    "  else\n"
    "    local cover = w\n"
    "    if curr > 0 then cover = math.min(w, math.floor((n - 1) * w / curr)) "
    "end\n"
    "    wait = (w - e) + (w - cover)\n"
    "  end\n"
    "  if wait < 1 then wait = 1 end\n"
    "  if wait <= allow then verdict = 2 else verdict = 0 end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'w', string.format('%d', win), 'p', "
    "string.format('%d', prev), 'c', string.format('%d', curr))\n"
    "redis.call('PEXPIRE', KEYS[1], math.ceil((2 * w - e) / 1000) + 1)\n"
    "local remaining = 0\n"
    "if used < budget then remaining = math.floor((budget - used) / w) end\n"
    "local reset = 0\n"
    "if curr > 0 then reset = 2 * w - e elseif prev > 0 then reset = w - e "
    "end\n"
    "return {verdict, wait, remaining, reset, 0}\n";

size_t sw_redis_args(struct sw_redis_args *a, bool release, uint64_t limit,
                     uint64_t window_ns, uint64_t allowance_ns, uint64_t slot)
{
    const uint64_t v[4] = {limit, window_ns / 1000, allowance_ns / 1000,
                           slot / 1000};
    a->argv[0] = release ? "release" : "take";
    a->len[0] = strlen(a->argv[0]);
    for (size_t i = 0; i < 4; i++) {
        int k = snprintf(a->store[i], sizeof a->store[i], "%llu",
                         (unsigned long long)v[i]);
        a->argv[i + 1] = a->store[i];
        a->len[i + 1] = (size_t)k;
    }
    return SW_REDIS_ARGS;
}

bool sw_redis_parse(const struct redisReply *reply, struct sw_decision *d)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 5)
        return false;
    long long verdict = rl_redis_int(reply, 0);
    if (verdict < SW_DENY || verdict > SW_WAIT)
        return false;
    long long v[4];
    for (size_t i = 0; i < 4; i++) {
        v[i] = rl_redis_int(reply, i + 1);
        if (v[i] < 0)
            v[i] = 0;
    }
    memset(d, 0, sizeof *d);
    d->verdict = (enum sw_verdict)verdict;
    d->wait_ns = (uint64_t)v[0] * 1000;
    d->remaining = (uint64_t)v[1];
    d->reset_ns = (uint64_t)v[2] * 1000;
    d->slot = (uint64_t)v[3] * 1000;
    return true;
}

bool sw_redis_fits(uint64_t limit, uint64_t window_ns)
{
    return (double)limit * 2 * ((double)window_ns / 1000.0) <
           9007199254740992.0;
}
