#!/bin/sh
# Flow accounting: `diffserv run --flows` writes flowacct records; `diffserv flows` reports them.
set -e
. "$(dirname "$0")/common.inc"
demo_setup flows "flow accounting"
ext=${capture##*.}

echo "# $policy sends every class through flowacct acct_all (after marking):"
grep -n -A8 'module flowacct' "$policy" | sed 's/^/    /'
echo
echo "# (the capture was taken where the policy's filters expect it: --direction fwd-out)"
echo "\$ diffserv run $policy $capture -o marked.$ext --direction fwd-out --flows flows.jsonl -q"
$DIFFSERV run "$policy" "$capture" -o "$out/marked.$ext" --direction fwd-out \
    --flows "$out/flows.jsonl" -q
echo
echo '$ head -n 2 flows.jsonl                 # one extended record per flow item'
head -n 2 "$out/flows.jsonl"
echo
echo '# one flow metered into AF11/AF12/AF13 gives one record (item) per DS byte:'
echo '$ diffserv flows flows.jsonl --top 5'
(cd "$out" && $DIFFSERV flows flows.jsonl --top 5)
echo
echo '# the same records as Parquet (timestamps typed), summarised as JSON for scripts:'
echo "\$ diffserv run $policy $capture -o marked.$ext --direction fwd-out --flows flows.parquet -q"
$DIFFSERV run "$policy" "$capture" -o "$out/marked.$ext" --direction fwd-out \
    --flows "$out/flows.parquet" -q
echo '$ diffserv flows flows.parquet --json    # (the first DSCP rows shown)'
(cd "$out" && $DIFFSERV flows flows.parquet --json) | sed -n '/"top-dscp"/,/^      \],*$/p' | head -n 21
echo
echo '$ diffserv run ... --flows flows.txt      # unknown record format: exit status 2'
status=0
$DIFFSERV run "$policy" "$capture" -o "$out/x.pcap" --flows "$out/flows.txt" -q 2>&1 || status=$?
echo "exit status $status"
