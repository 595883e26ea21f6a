-- Raises at its top level.
local t = nil
local x = t.field
function decide() end
