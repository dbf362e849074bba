#!/bin/sh
# The marking audit: the capture before marking fails it, `diffserv run`'s output passes,
# and a hop's re-marking is checked against the policy packet by packet.
set -e
. "$(dirname "$0")/common.inc"
demo_setup audit "audit"

$DIFFSERV run "$policy" "$capture" -o "$out/marked.pcapng" --direction fwd-out -q
echo "# what diffserv run wrote carries the marks the policy prescribes:"
echo "\$ diffserv audit $policy marked.pcapng --direction fwd-out"
COLUMNS=80 $DIFFSERV audit "$policy" "$out/marked.pcapng" --direction fwd-out
echo
echo "# the capture as it arrived, before marking (exit status 1: mismarked):"
echo "\$ diffserv audit $policy $capture --direction fwd-out --top 3"
status=0
COLUMNS=80 $DIFFSERV audit "$policy" "$capture" --direction fwd-out --top 3 || status=$?
echo "exit status $status"
echo
echo "# the same traffic either side of the marking hop, matched packet by packet:"
echo "\$ diffserv audit --compare $capture marked.pcapng $policy --direction fwd-out"
COLUMNS=80 $DIFFSERV audit --compare "$capture" "$out/marked.pcapng" "$policy" --direction fwd-out
