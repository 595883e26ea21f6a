-- Sandbox escape attempts (shared/research/tech-notes.md §3), one per
-- value of the x-case header. Each must end in a contained error or the
-- documented result: never a crash, a hang or a state that stops working.
local cases = {}

function cases.ok()
  return { model = "ok" }
end

function cases.busy_loop()
  while true do end
end

-- pcall must not swallow the budget stop.
function cases.pcall_swallow()
  while true do
    pcall(function() while true do end end)
  end
end

function cases.xpcall_swallow()
  while true do
    xpcall(function() while true do end end, function() while true do end end)
  end
end

-- Still an ordinary xpcall for ordinary use.
function cases.xpcall_works()
  local ok, msg = xpcall(function(a) error("boom:" .. a, 0) end,
                         function(e) return "handled " .. e end, "x")
  local ok2, sum = xpcall(function(a, b) return a + b end, print, 1, 2)
  return { model = table.concat({ tostring(ok), msg, tostring(ok2), sum }, "|") }
end

-- Copying loops: each call is one instruction but megabytes of work.
function cases.copy_loop()
  local big = ("x"):rep(1 << 20)
  while true do
    local copy = big .. "y"
  end
end

function cases.rep_pcall_loop()
  while true do
    pcall(string.rep, "x", 1 << 20)
  end
end

function cases.find_loop()
  local big = ("x"):rep(1 << 20)
  while true do
    big:find("y", 1, true)
  end
end

-- 100 x 1 MiB strings against a smaller memory cap.
function cases.string_bomb()
  local keep = {}
  for i = 1, 100 do keep[i] = string.rep("x", 1 << 20) .. i end
  return { model = tostring(#keep) }
end

function cases.table_growth()
  local t = {}
  local i = 0
  while true do
    i = i + 1
    t[i] = { i }
  end
end

-- A memory error caught by pcall, then more allocation.
function cases.memory_pcall()
  local keep = {}
  while true do
    pcall(function() keep[#keep + 1] = string.rep("y", 1 << 20) end)
  end
end

function cases.huge_rep()
  return { model = string.rep("x", 1 << 40) }
end

function cases.huge_rep_method()
  return { model = ("x"):rep(1 << 30, ",") }
end

function cases.catastrophic_pattern()
  local s = ("a"):rep(3000)
  return { model = tostring(string.find(s, (".-"):rep(4) .. "b")) }
end

-- The string metatable is shared: method calls reach the wrapper too.
function cases.catastrophic_method()
  local s = ("a"):rep(3000)
  return { model = tostring(s:find((".-"):rep(4) .. "b")) }
end

function cases.catastrophic_gmatch()
  for _ in ("a"):rep(3000):gmatch(("a-"):rep(4) .. "b") do end
end

function cases.catastrophic_gsub()
  return { model = (("a"):rep(3000):gsub(("a*"):rep(4) .. "b", "")) }
end

function cases.plain_find_long()
  local s = ("a"):rep(100000) .. "needle"
  return { model = tostring(s:find("needle", 1, true)) }
end

function cases.simple_pattern_ok()
  local s = "gpt-4o-mini-2024"
  local family = s:match("^(%a+)%-")
  return { model = family .. ":" .. tostring(("x"):rep(3)) }
end

function cases.format_width()
  return { model = string.format("%99999d", 1) }
end

function cases.format_long()
  return { model = string.format("%5.3s", "abcdef") }
end

-- req kept past its call: using it later must be an error.
function cases.stash()
  stashed_req = req_arg
  stashed_header = req_arg.header
end

function cases.use_stash()
  return { model = stashed_req.model }
end

function cases.use_stashed_header()
  return { model = stashed_header("x-case") }
end

function cases.deep_recursion()
  local function dive(n) return 1 + dive(n + 1) end
  return { model = tostring(dive(1)) }
end

function cases.write_sluice()
  sluice.health = function() return 0 end
end

function cases.write_req()
  req_arg.model = "other"
end

function cases.unknown_req_field()
  return { model = req_arg.modle }
end

function cases.error_table()
  error({ reason = "table" })
end

function cases.error_level0()
  error("raised without a position", 0)
end

function cases.return_function()
  return print
end

function cases.return_huge_table()
  local t = {}
  for i = 1, 100000 do t[i] = i end
  return t
end

function cases.return_sluice()
  return sluice
end

function decide(req, ctx)
  req_arg = req
  local case = cases[req.header("x-case")]
  return case(req, ctx)
end
