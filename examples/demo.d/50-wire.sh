#!/bin/sh
# Flows on the wire: flowacct records exported as IPFIX, collected back into the flow store.
set -e
. "$(dirname "$0")/common.inc"
demo_setup wire "export"

echo "# flowacct records as IPFIX datagrams, kept in a capture file (ipfix://HOST:PORT sends them):"
echo "\$ diffserv run $policy $capture -o marked.pcapng --direction fwd-out --export file://export.pcap -q"
$DIFFSERV run "$policy" "$capture" -o "$out/marked.pcapng" --direction fwd-out --export "file://$out/export.pcap" -q
echo
echo '# the collector decodes captured exports through the same path as live ones:'
echo '$ diffserv collect --from-pcap export.pcap --store store/'
(cd "$out" && $DIFFSERV collect --from-pcap export.pcap --store store/)
echo
echo '# the flow store: Parquet files partitioned by hour, one schema for every source:'
echo '$ find store -name "*.parquet"'
(cd "$out" && find store -name '*.parquet' | sort | sed 's/-[0-9]*-[0-9]*\.parquet$/-….parquet/')
echo
echo '# `diffserv run --flows DIR/` writes the same store directly:'
echo "\$ diffserv run $policy $capture -o marked.pcapng --direction fwd-out --flows store/ -q"
$DIFFSERV run "$policy" "$capture" -o "$out/marked.pcapng" --direction fwd-out --flows "$out/store/" -q
echo
echo '$ diffserv collect --listen udp://example.com:4739 --store store/   # not an address: exit 2'
status=0
$DIFFSERV collect --listen udp://example.com:4739 --store "$out/store" 2>&1 || status=$?
echo "exit status $status"
