#!/bin/sh
# Codepoints: name <-> DSCP <-> ToS byte, and annotating a flow tool's ToS column.
set -e
: "${DIFFSERV:=diffserv}"

echo '$ diffserv dscp ef                       # a name: EF is ToS 0xb8'
$DIFFSERV dscp ef
echo
echo '$ diffserv dscp --tos 0x48               # NetFlow "verbose" ToS 48 (hex)'
$DIFFSERV dscp --tos 0x48
echo
echo '$ diffserv dscp --brief AF21 cs3 le va default 0x2e'
$DIFFSERV dscp --brief AF21 cs3 le va default 0x2e
echo
echo '$ diffserv dscp --brief ef --ecn ect1     # EF sent ECN-capable'
$DIFFSERV dscp --brief ef --ecn ect1
echo
echo '# a Tos column as nfdump prints it (decimal, ECN bits included), piped in:'
echo '$ printf "%s\\n" 184 185 136 72 40 4 0 | diffserv dscp --tos'
printf '%s\n' 184 185 136 72 40 4 0 | $DIFFSERV dscp --tos
echo
echo '$ diffserv dscp AF51                     # a typo: one line, exit status 2'
status=0
$DIFFSERV dscp AF51 2>&1 || status=$?
echo "exit status $status"
