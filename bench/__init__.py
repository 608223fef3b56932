"""``make bench``: the gateway stack beside the broker's floor (a bare aiokafka ping-pong on the
same broker, ``bench.floor``), the architecture's least (the same two hops between an HTTP and a
service process with only the key check and the query around them, ``bench.minimal``) and a direct
aiohttp + asyncpg baseline, with CPU per request per process; what the gateway's request controls
cost (``bench.gateway_features``); signed inbound orders at stepped rates (``bench.ingest``); then
idle CPU and a soak.

Loopback only (127.0.0.1); request counts and run time are bounded by BENCH_DURATION_S per load
run, INGEST_STEP_S per ingest step, BENCH_IDLE_S for the idle measurement and SOAK_DURATION_S for
the soak. See bench/RESULTS.md
for recorded runs.
"""
