-- Warm-up of the object-count scenario: GET /obj/1 .. /obj/N once each. Arguments after "--":
-- N and a marker file, written once N responses have arrived (wrk's thread:stop() stops the
-- requests but wrk still waits out -d, so run.sh watches the marker and ends wrk itself).
-- One wrk thread (-t1), so one counter for all connections. Requests in flight at the end may
-- wrap to /obj/1.. again: harmless repeats.
local n, marker, next_id, done = 1000, nil, 0, 0

function init(args)
    n = tonumber(args[1]) or n
    marker = args[2]
end

function request()
    next_id = next_id % n + 1
    return wrk.format("GET", "/obj/" .. next_id)
end

function response(status, headers, body)
    done = done + 1
    if done == n then
        if marker then
            local file = io.open(marker, "w")
            if file then
                file:write(tostring(done), "\n")
                file:close()
            end
        end
        wrk.thread:stop()
    end
end
