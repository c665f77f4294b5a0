-- wrk -s bench/wrk-p999.lua: after the run, the 99.9th percentile of the
-- latency in microseconds (wrk --latency stops at the 99th), for run.sh.
done = function(summary, latency, requests)
    io.write(string.format("p999_us=%d\n", latency:percentile(99.9)))
end
