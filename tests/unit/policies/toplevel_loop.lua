-- Never finishes its top level: the load must fail.
while true do end
function decide() end
