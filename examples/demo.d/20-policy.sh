#!/bin/sh
# Policies: check an ipqosconf file, explain what it does, and the canonical form.
set -e
: "${DIFFSERV:=diffserv}"
# Run from the repository root so the file names printed are short.
case "$DIFFSERV" in */*) DIFFSERV=$(cd "$(dirname "$DIFFSERV")" && pwd)/$(basename "$DIFFSERV") ;; esac
cd "$(dirname "$0")/../.."
policies=examples/policies

echo '$ diffserv check examples/policies/enterprise-edge.conf'
$DIFFSERV check "$policies/enterprise-edge.conf"
echo
echo '$ diffserv explain examples/policies/enterprise-edge.conf'
$DIFFSERV explain "$policies/enterprise-edge.conf"
echo
echo '# The Oracle guide'"'"'s application-server example, as printed there:'
echo '$ diffserv check examples/policies/oracle-34-3-bigapps.conf   # exit status 1'
status=0
$DIFFSERV check "$policies/oracle-34-3-bigapps.conf" 2>&1 || status=$?
echo "exit status $status"
echo
echo '# The illumos sample 1 as shipped (placeholders, `uid` for `user`):'
status=0
$DIFFSERV check "$policies/illumos-sample-1.conf" 2>&1 || status=$?
echo "exit status $status"
echo
echo '$ diffserv fmt examples/policies/oracle-37-2-vlan.conf     # canonical (ipqosconf -l) form'
$DIFFSERV fmt "$policies/oracle-37-2-vlan.conf"
echo '$ diffserv fmt --check examples/policies/oracle-37-2-vlan.conf   # not canonical: exit 1'
status=0
$DIFFSERV fmt --check "$policies/oracle-37-2-vlan.conf" 2>&1 || status=$?
echo "exit status $status"
