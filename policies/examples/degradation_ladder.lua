-- Degradation ladder: step down to cheaper models, then to a backup
-- upstream, as the tenant's budget runs out or an upstream's circuit
-- breaker opens; refuse with a Retry-After when nothing is left.
--
-- Reads gateway health that plugins publish:
--   breaker.<upstream>.open       1 while the breaker is open, else 0
--   budget.<tenant>.used_ratio    spend so far / budget (1.0 = all used)
-- A name nobody published reads as nil and counts as healthy.

-- Rung 1 is normal service; each later rung is one step down.
local LADDER = {
  { upstream = "openai", model = "gpt-4o" },
  { upstream = "openai", model = "gpt-4o-mini" },
  { upstream = "backup", model = "gpt-4o-mini" },
}

-- Budget used -> first rung allowed (checked top down).
local BUDGET_STEPS = {
  { used = 0.90, rung = 3 },
  { used = 0.75, rung = 2 },
}

local BUDGET_RETRY_AFTER_S = 3600 -- budget exhausted: try again later
local OUTAGE_RETRY_AFTER_S = 30   -- every rung's breaker is open

local function breaker_open(upstream)
  return (sluice.health("breaker." .. upstream .. ".open") or 0) >= 1
end

local function budget_used(tenant)
  if tenant == nil then
    return 0
  end
  return sluice.health("budget." .. tenant .. ".used_ratio") or 0
end

-- The first rung the budget allows.
local function budget_rung(used)
  for _, step in ipairs(BUDGET_STEPS) do
    if used >= step.used then
      return step.rung
    end
  end
  return 1
end

function decide(req, ctx)
  local used = budget_used(req.tenant)
  if used >= 1 then
    return {
      action = "reject",
      status = 429,
      retry_after = BUDGET_RETRY_AFTER_S,
      message = "budget exhausted for this period",
      tags = { "ladder:budget" },
    }
  end

  local rung = budget_rung(used)
  while rung <= #LADDER and breaker_open(LADDER[rung].upstream) do
    rung = rung + 1
  end
  if rung > #LADDER then
    return {
      action = "reject",
      status = 429,
      retry_after = OUTAGE_RETRY_AFTER_S,
      message = "all upstreams are unavailable, retry shortly",
      tags = { "ladder:outage" },
    }
  end
  if rung == 1 then
    return nil -- normal service, change nothing
  end

  local step = LADDER[rung]
  return {
    action = "degrade",
    degrade_level = rung - 1,
    upstream = step.upstream,
    model = step.model,
    tags = { "ladder:" .. (rung - 1) },
  }
end
