-- wrk script: bench/post.lua's request, asking for the model "fast".
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"fast","messages":[{"role":"user","content":"Say hello in one short sentence, please."}]}'
