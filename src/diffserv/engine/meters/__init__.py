"""The IPQoS meters (tokenmt, tswtclmt): their configuration layout and exact arithmetic.

The operator classes live in ``engine.modules.tokenmt`` / ``engine.modules.tswtclmt``;
this package holds what they hand the compiled per-packet loops (src/kernels/meters.c,
imported from ``diffserv._kernels``): the config and state slots, the no-overflow
reasoning behind them, and the seeding of tswtclmt's random source.
"""
