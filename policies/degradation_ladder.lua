-- Degradation ladder: how much service the gateway gives, from gateway
-- health, one level for every request:
--   0  full service                         (decide returns nil)
--   1  cheaper model and a lower max_tokens (DOWNGRADE below; the router
--      plugin clamps max_tokens to LEVEL1_MAX_TOKENS)
--   2  cache only: the cache plugin answers hits; the router plugin, after
--      it in the pipeline, answers misses 503 with Retry-After
--   3  static answers per category (the router's static_answers, chosen
--      by ctx.vars["ladder.category"])
--   4  maintenance: 503 with Retry-After, from here
--
-- Signals (health that plugins publish; a name nobody published reads as
-- nil and counts as healthy):
--   breaker.<upstream>.open   breaker plugin: 1 while open
--   budget.<name>.used_ratio  cost_tracker: settled spend / limit, for the
--                             global budgets in BUDGETS, and
--                             budget.<name>.<tenant>.used_ratio for the
--                             per-tenant ones in TENANT_BUDGETS
--   router.in_flight          router plugin: requests between the router
--                             and their end (with the router before
--                             admission in the pipeline: queued + running)
--   router.rate_429           router plugin: share of upstream answers that
--                             were 429 over its rate_window_s
-- Each signal gives a level through its steps table (highest step
-- reached); the request gets the highest of them. Edit a threshold and
-- send SIGHUP: the next request uses it.

local UPSTREAMS = { "primary", "secondary" } -- breakers to watch
local BUDGETS = { "global-month" }
local TENANT_BUDGETS = { "tenant-month" }

-- { value reached, level }, highest first.
local BUDGET_STEPS = { { 1.00, 3 }, { 0.90, 2 }, { 0.75, 1 } }
local IN_FLIGHT_STEPS = { { 2000, 3 }, { 800, 2 }, { 400, 1 } }
local RATE_429_STEPS = { { 0.50, 2 }, { 0.10, 1 } }
-- open breakers: some -> 1 (the router's pools route around them), all -> 3

local MAINTENANCE = false -- true: level 4 for everyone
local MAINTENANCE_RETRY_S = 300

local LEVEL1_MAX_TOKENS = 512
-- Level 1: asked model (or alias) -> cheaper one. Others keep theirs.
local DOWNGRADE = {
  smart = "fast",
  ["gpt-4o"] = "gpt-4o-mini",
  ["gpt-4.1"] = "gpt-4.1-mini",
}

-- Static-answer categories, by the first keyword found in the prompt's
-- first 2000 bytes (plain find); "default" otherwise.
local CATEGORIES = {
  { "invoice", "billing" }, { "refund", "billing" }, { "password", "account" },
  { "login", "account" },
}

local function step_level(value, steps)
  if value == nil then
    return 0
  end
  for _, step in ipairs(steps) do
    if value >= step[1] then
      return step[2]
    end
  end
  return 0
end

local function budget_used(req)
  local used = 0
  for _, name in ipairs(BUDGETS) do
    used = math.max(used, sluice.health("budget." .. name .. ".used_ratio") or 0)
  end
  if req.tenant ~= nil then
    for _, name in ipairs(TENANT_BUDGETS) do
      local v = sluice.health("budget." .. name .. "." .. req.tenant .. ".used_ratio")
      used = math.max(used, v or 0)
    end
  end
  return used
end

local function breaker_level()
  local open = 0
  for _, up in ipairs(UPSTREAMS) do
    if (sluice.health("breaker." .. up .. ".open") or 0) >= 1 then
      open = open + 1
    end
  end
  if open == 0 then
    return 0
  end
  return open == #UPSTREAMS and 3 or 1
end

-- ladder_level(req) -> 0..4
function ladder_level(req)
  if MAINTENANCE then
    return 4
  end
  return math.max(
    step_level(budget_used(req), BUDGET_STEPS),
    step_level(sluice.health("router.in_flight"), IN_FLIGHT_STEPS),
    step_level(sluice.health("router.rate_429"), RATE_429_STEPS),
    breaker_level())
end

local function category(req)
  local body = req.body
  if type(body) ~= "table" or type(body.messages) ~= "table" then
    return "default"
  end
  local last = body.messages[#body.messages]
  if type(last) ~= "table" or type(last.content) ~= "string" then
    return "default"
  end
  local text = last.content:sub(1, 2000):lower()
  for _, c in ipairs(CATEGORIES) do
    if text:find(c[1], 1, true) then
      return c[2]
    end
  end
  return "default"
end

function decide(req, ctx)
  local level = ladder_level(req)
  if level == 0 then
    return nil
  end
  if level >= 4 then
    return {
      action = "reject", status = 503, retry_after = MAINTENANCE_RETRY_S,
      message = "The service is down for maintenance.",
      tags = { "ladder:4" },
    }
  end
  local d = { action = "degrade", degrade_level = level, tags = { "ladder:" .. level } }
  if level == 1 then
    d.model = DOWNGRADE[req.model]
    ctx.vars["router.max_tokens"] = LEVEL1_MAX_TOKENS
  elseif level == 3 then
    ctx.vars["ladder.category"] = category(req)
  end
  return d
end
