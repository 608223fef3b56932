"""``make bench``: the gateway stack against a direct aiohttp + asyncpg baseline, plus idle CPU.

Loopback only (127.0.0.1); request counts and run time are bounded by BENCH_DURATION_S per load
run and BENCH_IDLE_S for the idle measurement. See bench/RESULTS.md for recorded runs.
"""
