#!/bin/sh
# DSCP and ToS reports: the same engine over a capture, a flow store and record files.
set -e
. "$(dirname "$0")/common.inc"
demo_setup report "report"

echo "# a capture is turned into flows on the fly (flowacct over every packet):"
echo "\$ diffserv report $capture"
COLUMNS=80 $DIFFSERV report "$capture"
echo
echo "\$ diffserv report $capture --report apps --top 2"
COLUMNS=80 $DIFFSERV report "$capture" --report apps --top 2
echo
echo '# the marks the policy wrote, from the flow store `run --flows DIR/` fills:'
$DIFFSERV run "$policy" "$capture" -o "$out/marked.pcapng" --direction fwd-out --flows "$out/store/" -q
echo "\$ diffserv report store/ --report groups"
COLUMNS=80 $DIFFSERV report "$out/store/" --report groups
echo
echo "\$ diffserv report store/ --report ecn --filter dscp=AF21-AF43 --csv"
$DIFFSERV report "$out/store/" --report ecn --filter dscp=AF21-AF43 --csv
echo
echo "\$ diffserv report store/ --filter addr=not-an-address   # a bad filter: one line, exit 2"
status=0
$DIFFSERV report "$out/store/" --filter addr=not-an-address 2>&1 || status=$?
echo "exit status $status"
