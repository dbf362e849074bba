"""The marking audit: observed marks against the policy's."""
