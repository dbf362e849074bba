"""The live data plane: the policy on a host's own traffic, through NFQUEUE.

Packets come from a netfilter queue socket in batches (``netlink``, ``source``), run
through the same engine session as captures, and go back as verdicts (``verdicts``);
``rules`` installs the iptables rules that queue them, ``daemon`` ties it together for
``diffserv live``. See docs/live.md.
"""
