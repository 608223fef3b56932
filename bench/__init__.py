"""``make bench``: the gateway stack beside the broker's floor (a bare aiokafka ping-pong on the
same broker, ``bench.floor``) and a direct aiohttp + asyncpg baseline, with CPU per request per
process, then idle CPU and a soak.

Loopback only (127.0.0.1); request counts and run time are bounded by BENCH_DURATION_S per load
run, BENCH_IDLE_S for the idle measurement and SOAK_DURATION_S for the soak. See bench/RESULTS.md
for recorded runs.
"""
