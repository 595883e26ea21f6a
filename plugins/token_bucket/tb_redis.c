/* The Redis twin of tb_core.c: one script, one round trip per decision,
 * Redis's TIME as the only clock. */
#include "tb_core.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

#include "../common/rl_redis.h"

/* KEYS[1]: the key's hash. ARGV: op ("take" | "adjust" | "pause"),
 * wait_us (take: the longest reservation; pause: its length), slack_us
 * (the instance's max wait: bounds how far a TAT may run ahead), then per
 * dimension (requests, tokens): limit per period (0: off), period_us,
 * burst, amount (take: cost; adjust: signed units).
 * A time is integer us plus a remainder in 1/limit us, so a fractional
 * emission interval (period / limit) stays exact; products stay < 2^53.
 * Replies to take: {verdict, wait_us, binding, remaining_requests,
 * remaining_tokens, reset_requests_us, reset_tokens_us}; verdict 0 deny,
 * 1 allow, 2 reserved (wait), 3 too big. */
const char tb_redis_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local op, arg_wait, slack = ARGV[1], tonumber(ARGV[2]), "
    "tonumber(ARGV[3])\n"
    "local f = redis.call('HMGET', KEYS[1], 't0', 'r0', 'n0', 't1', 'r1', "
    "'n1')\n"
    "local function divmod(a, b)\n"
    "  local q = math.floor(a / b)\n"
    "  local r = a - q * b\n"
    "  if r < 0 then q, r = q - 1, r + b elseif r >= b then q, r = q + 1, "
    "r - b end\n"
    "  return q, r\n"
    "end\n"
    "local function later(au, ar, bu, br)\n"
    "  return au > bu or (au == bu and ar > br)\n"
    "end\n"
    "local dims = {}\n"
    "for i = 0, 1 do\n"
    "  local b = 4 + i * 4\n"
    "  local n = tonumber(ARGV[b])\n"
    "  if n > 0 then\n"
    "    local d = {n = n, per = tonumber(ARGV[b + 1]), burst = "
    "tonumber(ARGV[b + 2]), amt = tonumber(ARGV[b + 3])}\n"
    "    local us, rem, on = tonumber(f[1 + i * 3]), tonumber(f[2 + i * 3]) "
    "or 0, tonumber(f[3 + i * 3])\n"
    "    if not us then us, rem = now, 0 end\n"
    "    if on and on > 0 and on ~= n then rem = math.floor(rem * n / on) "
    "end\n"
    "    if rem >= n then rem = n - 1 end\n"
    "    if us < now then us, rem = now, 0 end\n"
    "    d.iq, d.ir = divmod(d.per, n)\n"
    "    d.tq, d.tr = divmod(d.burst * d.per, n)\n"
    "    d.cu, d.cr = now + d.tq + d.per + slack, d.tr\n"
    "    if later(us, rem, d.cu, d.cr) then us, rem = d.cu, d.cr end\n"
    "    d.us, d.rem = us, rem\n"
    "    dims[i] = d\n"
    "  end\n"
    "end\n"
    "local function add(d, u, r, q, rr)\n"
    "  u, r = u + q, r + rr\n"
    "  if r >= d.n then u, r = u + 1, r - d.n end\n"
    "  if later(u, r, d.cu, d.cr) then u, r = d.cu, d.cr end\n"
    "  return u, r\n"
    "end\n"
    "local function save()\n"
    "  local kv, latest = {}, now\n"
    "  for i = 0, 1 do\n"
    "    local d = dims[i]\n"
    "    if d then\n"
    "      for _, v in ipairs({'t' .. i, string.format('%d', d.us), 'r' .. "
    "i, string.format('%d', d.rem), 'n' .. i, string.format('%d', d.n)}) "
    "do kv[#kv + 1] = v end\n"
    "      local last = d.us\n"
    "      if d.rem > 0 then last = last + 1 end\n"
    "      if last > latest then latest = last end\n"
    "    end\n"
    "  end\n"
    "  if latest <= now then\n"
    "    redis.call('DEL', KEYS[1])\n"
    "  else\n"
    "    redis.call('HSET', KEYS[1], unpack(kv))\n"
    "    redis.call('PEXPIRE', KEYS[1], math.ceil((latest - now) / 1000) + "
    "1000)\n"
    "  end\n"
    "end\n"
    "if op == 'take' then\n"
    "  local wait, binding, verdict = 0, 0, 1\n"
    "  for i = 0, 1 do\n"
    "    local d = dims[i]\n"
    "    if d then\n"
    "      if d.amt > d.burst then verdict, binding = 3, i end\n"
    "      local q, r = divmod(d.amt * d.per, d.n)\n"
    "      d.nu, d.nr = d.us + q, d.rem + r\n"
    "      if d.nr >= d.n then d.nu, d.nr = d.nu + 1, d.nr - d.n end\n"
    "      local eu, er = d.nu - d.tq, d.nr - d.tr\n"
    "      if er < 0 then eu, er = eu - 1, er + d.n end\n"
    "      local w = 0\n"
    "      if later(eu, er, now, 0) then\n"
    "        w = eu - now\n"
    "        if er > 0 then w = w + 1 end\n"
    "      end\n"
    "      if verdict ~= 3 and w > wait then wait, binding = w, i end\n"
    "    end\n"
    "  end\n"
    "  if verdict ~= 3 then\n"
    "    if wait == 0 then verdict = 1 elseif wait <= arg_wait then verdict "
    "= 2 else verdict = 0 end\n"
    "  end\n"
    "  if verdict == 1 or verdict == 2 then\n"
    "    for i = 0, 1 do\n"
    "      local d = dims[i]\n"
    "      if d then d.us, d.rem = d.nu, d.nr end\n"
    "    end\n"
    "    save()\n"
    "  end\n"
    "  local out = {verdict, wait, binding, 0, 0, 0, 0}\n"
    "  for i = 0, 1 do\n"
    "    local d = dims[i]\n"
    "    if d then\n"
    "      local x = (now + d.tq - d.us) * d.n + (d.tr - d.rem)\n"
    "      if x > 0 then\n"
    "        local left = divmod(x, d.per)\n"
    "        if left > d.burst then left = d.burst end\n"
    "        out[4 + i] = left\n"
    "      end\n"
    "      local reset = d.us - now\n"
    "      if d.rem > 0 then reset = reset + 1 end\n"
    "      out[6 + i] = reset\n"
    "    end\n"
    "  end\n"
    "  return out\n"
    "elseif op == 'adjust' then\n"
    "  for i = 0, 1 do\n"
    "    local d = dims[i]\n"
    "    if d and d.amt ~= 0 then\n"
    "      local q, r = divmod(math.abs(d.amt) * d.per, d.n)\n"
    "      if d.amt > 0 then\n"
    "        d.us, d.rem = add(d, d.us, d.rem, q, r)\n"
    "      else\n"
    "        local u, rr = d.us - q, d.rem - r\n"
    "        if rr < 0 then u, rr = u - 1, rr + d.n end\n"
    "        if u < now then u, rr = now, 0 end\n"
    "        d.us, d.rem = u, rr\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  save()\n"
    "  return 1\n"
    "elseif op == 'pause' then\n"
    "  local d = dims[0] or dims[1]\n"
    "  local wu, wr = now + arg_wait + d.tq - d.iq, d.tr - d.ir\n"
    "  if wr < 0 then wu, wr = wu - 1, wr + d.n end\n"
    "  if later(wu, wr, d.us, d.rem) then d.us, d.rem = add(d, wu, wr, 0, "
    "0) end\n"
    "  save()\n"
    "  return 1\n"
    "end\n"
    "return redis.error_reply('unknown op')\n";

static const char *const op_names[] = {"take", "adjust", "pause"};

size_t tb_redis_args(struct tb_redis_args *a, enum tb_redis_op op,
                     const struct tb_limits *l, uint64_t max_wait_ns,
                     uint64_t wait_or_pause_ns, int64_t requests,
                     int64_t tokens)
{
    const int64_t amount[TB_DIMS] = {requests, tokens};
    size_t n = 0;
    uint64_t wait_us = op == TB_OP_PAUSE ? (wait_or_pause_ns + 999) / 1000
                                         : wait_or_pause_ns / 1000;

    a->argv[n] = op_names[op];
    a->len[n] = strlen(op_names[op]);
    n++;
#define PUT(fmt, v)                                                            \
    do {                                                                       \
        int k = snprintf(a->store[n], sizeof a->store[n], fmt, v);             \
        a->argv[n] = a->store[n];                                              \
        a->len[n] = (size_t)k;                                                 \
        n++;                                                                   \
    } while (0)
    PUT("%llu", (unsigned long long)wait_us);
    PUT("%llu", (unsigned long long)(max_wait_ns / 1000));
    for (int i = 0; i < TB_DIMS; i++) {
        PUT("%llu", (unsigned long long)l->limit[i]);
        PUT("%llu", (unsigned long long)(l->period_ns / 1000));
        PUT("%llu", (unsigned long long)l->burst[i]);
        PUT("%lld", (long long)amount[i]);
    }
#undef PUT
    return n;
}

bool tb_redis_parse(const struct redisReply *reply, struct tb_decision *d)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 7)
        return false;
    long long verdict = rl_redis_int(reply, 0);
    if (verdict < TB_DENY || verdict > TB_TOO_BIG)
        return false;
    memset(d, 0, sizeof *d);
    d->verdict = (enum tb_verdict)verdict;
    d->wait_ns = (uint64_t)rl_redis_int(reply, 1) * 1000;
    d->binding = rl_redis_int(reply, 2) ? TB_TOKENS : TB_REQUESTS;
    for (int i = 0; i < TB_DIMS; i++) {
        long long rem = rl_redis_int(reply, 3 + (size_t)i);
        long long reset = rl_redis_int(reply, 5 + (size_t)i);
        d->remaining[i] = rem > 0 ? (uint64_t)rem : 0;
        d->reset_ns[i] = reset > 0 ? (uint64_t)reset * 1000 : 0;
    }
    return true;
}

bool tb_redis_fits(const struct tb_limits *l)
{
    const double max = 9007199254740992.0; /* 2^53 */
    for (int i = 0; i < TB_DIMS; i++)
        if (l->limit[i] && ((double)l->burst[i] + (double)l->limit[i]) *
                                   ((double)l->period_ns / 1000.0) >=
                               max)
            return false;
    return true;
}
