-- Complexity routing: when a client asks for the model "auto", send
-- long or complex prompts to a large model and everything else to a small,
-- cheap one. Requests naming a real model are left alone.
--
-- Cheap signals come first (token estimate, message count); the request
-- body is decoded only when those do not settle it, and only the last
-- message is inspected.

local ROUTED_MODELS = { auto = true } -- what clients send to mean "you pick"
local SMALL_MODEL = "gpt-4o-mini"
local LARGE_MODEL = "gpt-4o"

local LONG_PROMPT_TOKENS = 4000 -- above this: large model
local MANY_MESSAGES = 20        -- long conversations: large model
local SCAN_BYTES = 16384        -- how much of the last message to look at

-- Found with plain find (s:find(x, 1, true)), which costs no backtracking.
local COMPLEX_MARKERS = {
  "```", "step by step", "prove", "refactor", "stack trace", "analyze",
  "analyse",
}

local function last_message_text(req)
  local body = req.body -- decoded here, on first use, once per request
  if type(body) ~= "table" or type(body.messages) ~= "table" then
    return nil
  end
  local last = body.messages[#body.messages]
  if type(last) ~= "table" or type(last.content) ~= "string" then
    return nil
  end
  return last.content:sub(1, SCAN_BYTES):lower()
end

local function looks_complex(req)
  local text = last_message_text(req)
  if text == nil then
    return false
  end
  for _, marker in ipairs(COMPLEX_MARKERS) do
    if text:find(marker, 1, true) then
      return true
    end
  end
  return false
end

-- "small" | "large"
function classify(req)
  if (req.input_tokens or 0) > LONG_PROMPT_TOKENS then
    return "large", "long"
  end
  if (req.message_count or 0) > MANY_MESSAGES then
    return "large", "conversation"
  end
  if looks_complex(req) then
    return "large", "complex"
  end
  return "small", "simple"
end

function decide(req, ctx)
  if not ROUTED_MODELS[req.model] then
    return nil
  end
  local size, reason = classify(req)
  ctx.vars["complexity.reason"] = reason
  return {
    action = "route",
    model = size == "large" and LARGE_MODEL or SMALL_MODEL,
    tags = { "complexity:" .. size },
  }
end
