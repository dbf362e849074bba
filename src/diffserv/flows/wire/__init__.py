"""NetFlow v5, NetFlow v9 and IPFIX on the wire: sans-I/O codecs over bytes.

The information elements both directions use are one table, :mod:`.elements`.
"""
