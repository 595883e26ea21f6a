-- A small, typical policy for the microbenchmark: an allowlist lookup, two
-- comparisons and a string operation.
local allowed = { ["gpt-4o"] = true, ["gpt-4o-mini"] = true }

function decide(req, ctx)
  local model = req.model
  if not allowed[model] then
    return { action = "reject", status = 400, message = "model not allowed" }
  end
  if req.tier == "batch" or model:sub(-4) == "mini" then
    return { priority = "batch" }
  end
  return nil
end
