-- Complexity router: clients that ask for model = "auto" get the router's
-- "fast" alias for easy prompts and its "smart" alias for hard ones. The
-- router plugin maps the aliases to models (and splits and balances them),
-- so this policy names no provider model. Requests naming any other model
-- are left alone.
--
-- The complexity score (0-100), from cheap signals first:
--   prompt length     input_tokens / 100, at most 40 (4000 tokens = 40)
--   conversation      2 per message after the first, at most 20
--   answer size       10 when max_tokens > 1000
--   hard-task markers 15 per marker found in the last message, at most 45
--                     (code fences, "step by step", "prove", "refactor",
--                     "stack trace", "analyze", "debug", "optimi", ...)
-- score >= SMART_AT -> "smart", else "fast". The markers need the body
-- decoded, so they are looked at only when the cheap signals leave the
-- score below SMART_AT.
--
-- Tune SMART_AT or the weights, then send SIGHUP: the next request on each
-- worker is scored by the new file.

local AUTO = "auto"          -- what clients send to mean "you pick"
local FAST, SMART = "fast", "smart" -- the router's aliases
local SMART_AT = 30

local SCAN_BYTES = 8192      -- how much of the last message is searched
local MARKERS = {
  "```", "step by step", "prove", "refactor", "stack trace", "analyze",
  "analyse", "debug", "optimi", "algorithm", "derive", "trade-off",
}

local function last_message_text(req)
  local body = req.body -- decoded on first use, once per request
  if type(body) ~= "table" or type(body.messages) ~= "table" then
    return nil
  end
  local last = body.messages[#body.messages]
  if type(last) ~= "table" or type(last.content) ~= "string" then
    return nil
  end
  return last.content:sub(1, SCAN_BYTES):lower()
end

local function marker_points(req)
  local text = last_message_text(req)
  if text == nil then
    return 0
  end
  local points = 0
  for _, marker in ipairs(MARKERS) do
    if text:find(marker, 1, true) then -- plain find: no backtracking
      points = points + 15
      if points >= 45 then
        return 45
      end
    end
  end
  return points
end

-- complexity_score(req) -> 0..100
function complexity_score(req)
  local score = math.min(40, (req.input_tokens or 0) // 100)
  score = score + math.min(20, 2 * math.max(0, (req.message_count or 0) - 1))
  if (req.max_tokens or 0) > 1000 then
    score = score + 10
  end
  if score < SMART_AT then
    score = score + marker_points(req)
  end
  return math.min(100, score)
end

function decide(req, ctx)
  if req.model ~= AUTO then
    return nil
  end
  local score = complexity_score(req)
  local alias = score >= SMART_AT and SMART or FAST
  ctx.vars["complexity.score"] = score
  return { action = "route", model = alias, tags = { "complexity:" .. alias } }
end
