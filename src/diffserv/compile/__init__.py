"""Compile a validated IPQoS policy into a kernel ruleset (nftables, iptables).

``plan`` turns the policy into a backend-neutral plan (filters in ipgpc rank order, each
class's path with a verdict per action), ``grouping`` folds runs of filters into map
lookups, and ``nft_text``, ``nft_json`` and ``iptables_rules`` write the plan in each
backend's own format; ``check`` says per action what the kernel can do exactly.
docs/compile.md describes the whole.
"""
