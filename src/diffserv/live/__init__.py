"""The live data plane: the policy on a host's own traffic, through NFQUEUE.

Packets come from a netfilter queue socket in batches (``netlink``, ``source``), run
through the same engine session as captures, and go back as verdicts (``verdicts``);
``rules`` installs the iptables rules that queue them, ``daemon`` ties it together for
``diffserv live``; ``control``, ``kstat`` and ``metrics`` serve its statistics and take
new policies, ``apply`` is ipqosconf's transaction. See docs/live.md, docs/ipqosconf.md.
"""
