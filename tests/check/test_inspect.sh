#!/bin/sh
# gst-inspect-1.0 on the dit plugin and on each of its elements prints its
# page and nothing on stderr.  This caught the CRITICAL that reading
# ditdecode's framerate raised (gst_value_set_fraction: assertion
# 'denominator != 0' failed).
set -u
err=$(mktemp)
trap 'rm -f "$err"' EXIT
failed=0
for what in dit ditencode ditgenerate ditdecode; do
  if ! gst-inspect-1.0 "$what" > /dev/null 2> "$err"; then
    echo "FAIL: gst-inspect-1.0 $what exits with an error:"; cat "$err"
    failed=1
  elif [ -s "$err" ]; then
    echo "FAIL: gst-inspect-1.0 $what writes to stderr:"; cat "$err"
    failed=1
  else
    echo "ok: gst-inspect-1.0 $what"
  fi
done
exit $failed
