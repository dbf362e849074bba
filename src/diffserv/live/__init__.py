"""The live data plane: NFQUEUE source, verdicts, rules, daemon, control."""
