#!/bin/sh
# Demo step: run the enterprise WAN edge policy over the bundled capture and show the summary.
# $DIFFSERV is the diffserv command (set by examples/demo.sh).
set -e
DIFFSERV=${DIFFSERV:-diffserv}
here=$(cd "$(dirname "$0")/.." && pwd)
policy="$here/policies/enterprise-edge.conf"
capture="$here/captures/edge.pcapng"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "\$ diffserv run $(basename "$policy") edge.pcapng -o marked.pcapng --direction fwd-out --stats stats.json"
"$DIFFSERV" run "$policy" "$capture" -o "$out/marked.pcapng" --direction fwd-out \
    --stats "$out/stats.json" --flows "$out/flows.jsonl"
echo
echo "stats.json: $(wc -c < "$out/stats.json") bytes; flow records: $(wc -l < "$out/flows.jsonl")"
if command -v tshark >/dev/null 2>&1; then
    echo
    echo "tshark's view of the first marked packets (DSCP, ECN, IPv4 checksum status):"
    tshark -r "$out/marked.pcapng" -o ip.check_checksum:TRUE -c 8 \
        -T fields -e frame.number -e ip.src -e ip.dst -e ip.dsfield.dscp -e ip.dsfield.ecn \
        -e ip.checksum.status 2>/dev/null || true
fi
