-- Measured load of the object-count scenario: GET /obj/<uniform random 1..N> (N is the first
-- argument after "--"). The same script for every N, so its own cost cancels in the ratio.
local n = 1000

function init(args)
    n = tonumber(args[1]) or n
    math.randomseed(os.time())
end

function request()
    return wrk.format("GET", "/obj/" .. math.random(1, n))
end
