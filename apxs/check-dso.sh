#!/bin/sh
# A module DSO may leave only httpd/APR/library symbols undefined, and must
# export nothing but its module record. Fails the build otherwise.
set -eu
so=$1 module=$2
undef=$(nm -D --undefined-only "$so" | awk '{print $2}' | grep -E '^(gc_|gcmon_)' || true)
if [ -n "$undef" ]; then
    echo "check-dso: $so: unresolved core symbols:" $undef >&2
    rm -f "$so"
    exit 1
fi
exported=$(nm -D --defined-only "$so" | awk '$2 ~ /[BDGRSTVW]/ {print $3}' | grep -v "^$module\$" || true)
if [ -n "$exported" ]; then
    echo "check-dso: $so exports more than $module:" $exported >&2
    rm -f "$so"
    exit 1
fi
