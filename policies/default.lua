-- sluice default policy.
--
-- sluice calls decide(req, ctx) once per request, before the plugin
-- pipeline. It returns nil ("change nothing") or a table of changes; see
-- policies/README.md for every field of req, every key of the result and
-- the sluice.* functions.
--
-- Like Varnish's builtin.vcl, this file is a few small functions with one
-- job each, and decide() only puts their answers together. To customise,
-- copy the file, change the one function you care about, and point the
-- config's policy script at your copy. Edits are picked up on SIGHUP (or
-- by file watching) on the next request; a copy that fails to load leaves
-- the running policy in place.

-- decide() below depends only on what it reads from req: the same answers
-- give the same decision. Saying so lets sluice reuse a decision for a
-- request that answers those reads the same way, without running Lua.
-- sluice checks the promise after every call it runs (see README.md, Pure
-- policies): a copy that keeps state or reads the clock still gets the
-- answers a fresh run gives, it just is not reused.
decide_is_pure = true

-- Priorities a client may ask for with the x-priority header. "critical"
-- is deliberately missing: a client should not be able to jump every queue
-- by sending a header. Grant it from your own choose_priority instead.
local CLIENT_PRIORITIES = {
  realtime = true,
  standard = true,
  batch = true,
  low = true,
}

-- Key tiers (from the config's keys) that are for offline work: their
-- requests queue behind interactive traffic.
local BATCH_TIERS = { batch = true }

-- check_request(req) -> nil to go on, or a reject table.
-- The default refuses nothing: limits belong to the plugins (rate limits,
-- budgets) or to policies such as examples/token_budget.lua.
function check_request(req)
  return nil
end

-- choose_priority(req) -> "critical" | "realtime" | "standard" | "batch" |
-- "low", or nil to keep the priority the request already has.
function choose_priority(req)
  local asked = req.header("x-priority")
  if asked ~= nil then
    asked = asked:lower()
    if CLIENT_PRIORITIES[asked] then
      return asked
    end
  end
  if BATCH_TIERS[req.tier] then
    return "batch"
  end
  return nil
end

-- choose_route(req) -> upstream, model; either may be nil to keep what the
-- config's routing picked. The default keeps both. For example, to let
-- clients say "auto" and get a cheap model:
--   if req.model == "auto" then return nil, "gpt-4o-mini" end
-- (examples/complexity_routing.lua does this properly.)
function choose_route(req)
  return nil, nil
end

-- choose_tags(req) -> array of up to 8 short strings, or nil. Tags appear
-- in the x-sluice-tags response header, the access log's "tags" field and
-- the sluice_policy_tags_total{tag=...} metric (see README.md, Tags).
function choose_tags(req)
  return nil
end

function decide(req, ctx)
  local reject = check_request(req)
  if reject ~= nil then
    return reject
  end

  local priority = choose_priority(req)
  local upstream, model = choose_route(req)
  local tags = choose_tags(req)

  -- nil when nothing was chosen: no table to build, the cheapest answer
  -- for sluice to read.
  if priority == nil and upstream == nil and model == nil and tags == nil then
    return nil
  end
  return { priority = priority, upstream = upstream, model = model, tags = tags }
end
