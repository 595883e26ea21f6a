-- wrk script: the bench's small chat completion at temperature 0, so the
-- cache plugin may answer it (the first request stores it, the rest hit).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"gpt-4o-mini","temperature":0,"messages":[{"role":"user","content":"Say hello in one short sentence, please."}]}'
