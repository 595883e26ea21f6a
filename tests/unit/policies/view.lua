-- Reads the request view, ctx and the sluice API; x-case picks what.
local cases = {}

function cases.fields(req)
  return {
    model = table.concat({ req.model, req.endpoint, req.tenant, req.user,
                           req.tier }, "|"),
    tags = { tostring(req.stream), tostring(req.message_count),
             tostring(req.message_bytes), tostring(req.input_tokens),
             tostring(req.max_tokens), req.priority },
  }
end

function cases.headers(req)
  return {
    upstream = req.header("x-upstream"),
    model = tostring(req:header("x-missing")),
    tags = { req.var("plugin.note"), tostring(req.var("nope")) },
  }
end

function cases.body(req)
  local body = req.body
  assert(body == req.body, "req.body is decoded once per call")
  local first = body.messages[1]
  return {
    model = body.model,
    tags = { first.role, tostring(#body.messages),
             tostring(body.messages[2] == sluice.null),
             tostring(body.temperature), math.type(body.max_tokens),
             tostring(body.stream) },
  }
end

function cases.no_body(req)
  return { model = req.model }
end

function cases.health(req)
  return {
    model = string.format("%g|%s|%.1f", sluice.health("breaker.mock.open"),
                          tostring(sluice.health("nope")), sluice.now()),
  }
end

function cases.vars(req, ctx)
  ctx.vars["route.reason"] = "cheap"
  ctx.vars.count = 3
  ctx.vars.ratio = 0.25
end

function cases.log(req)
  sluice.log("hello", 1, "line\nbreak")
  print("printed", nil)
end

function decide(req, ctx)
  return cases[req.header("x-case")](req, ctx)
end
