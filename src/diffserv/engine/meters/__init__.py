"""Compiled kernels of the IPQoS meters (tokenmt, tswtclmt) and their exact integer helpers.

The operator classes live in ``engine.modules.tokenmt`` / ``engine.modules.tswtclmt``;
this package holds what they run per packet: numba loops over the batch rows, the
128-bit arithmetic the time sliding window needs, and the seeded random source.
"""
