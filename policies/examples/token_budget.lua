-- Token budget per request: refuse a request whose prompt plus the room it
-- asks for the answer (max_tokens) is more than its key's tier allows in
-- one request. Retrying the same request cannot help, so the answer is a
-- 400, not a 429.

local TIER_LIMITS = {
  free = 4096,
  standard = 32768,
  pro = 128000,
  batch = 128000,
}
local DEFAULT_TIER = "standard"    -- keys without a tier
local DEFAULT_MAX_TOKENS = 1024    -- when the client did not set max_tokens

function decide(req, ctx)
  local tier = req.tier
  local limit = TIER_LIMITS[tier]
  if limit == nil then
    tier = DEFAULT_TIER
    limit = TIER_LIMITS[DEFAULT_TIER]
  end

  local max_tokens = req.max_tokens
  if max_tokens == nil or max_tokens == 0 then
    max_tokens = DEFAULT_MAX_TOKENS
  end
  local needed = (req.input_tokens or 0) + max_tokens

  -- For later plugins and the access log.
  ctx.vars["token_budget.needed"] = needed
  ctx.vars["token_budget.limit"] = limit

  if needed > limit then
    return {
      action = "reject",
      status = 400,
      message = string.format(
        "request needs %d tokens (prompt + max_tokens); tier '%s' allows %d",
        needed, tier:sub(1, 32), limit),
      tags = { "token_budget:over" },
    }
  end
  return nil
end
