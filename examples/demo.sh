#!/bin/sh
# `make demo`: run every demo step in examples/demo.d in order.
# $1 is the diffserv command to use.
set -e
DIFFSERV=${1:-diffserv}
export DIFFSERV
here=$(dirname "$0")
for step in "$here"/demo.d/*.sh; do
    [ -e "$step" ] || continue
    printf '\n=== %s ===\n' "$(basename "$step" .sh)"
    sh "$step"
done
