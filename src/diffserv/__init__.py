"""diffserv: DiffServ classification, metering, marking and accounting for Linux.

The policy language and module semantics are those of illumos IPQoS; see
README.md for the tour and ``diffserv --help`` for the commands.
"""

__version__ = "0.1.0"
