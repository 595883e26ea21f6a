-- Defines no decide(): the load must fail.
local limit = 10
