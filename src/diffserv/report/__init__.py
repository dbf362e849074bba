"""DSCP and ToS reports over flow records: one engine for the terminal, files, the web and Spark."""
