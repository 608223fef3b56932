"""Simulators of the outside world (fake delivery and accounting platforms, a reference POS).

Never imported by a service: they stand where the real platforms and POS systems stand, bound to
127.0.0.1 only, started by `make run` for the demo and by tests on free ports."""
