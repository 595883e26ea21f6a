-- Answers with the first forbidden name that is reachable, or "none".
local forbidden = {
  "load", "loadfile", "dofile", "require", "collectgarbage", "setmetatable",
  "getmetatable", "rawset", "rawget", "rawequal", "rawlen", "io", "os",
  "debug", "package", "warn", "coroutine", "loadstring", "module", "newproxy",
}

function decide(req, ctx)
  for _, name in ipairs(forbidden) do
    if _ENV[name] ~= nil or _G[name] ~= nil then return { model = name } end
  end
  if string.dump ~= nil or ("").dump ~= nil then
    return { model = "string.dump" }
  end
  if _G ~= _ENV then return { model = "_G" } end
  -- What policies do need is there.
  assert(pairs and ipairs and pcall and tostring and string.format)
  assert(table.concat and math.floor and utf8.char and xpcall)
  return { model = "none" }
end
