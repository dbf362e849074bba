"""Sans-I/O packet handling shared by every data plane: decode, rewrite, checksums."""
