#!/bin/sh
# RTMP end to end: start nginx with the rtmp module on loopback, stream a
# few chunks with pipelines/rtmp-live.sh, read the stream back with
# rtmp2src and count the video frames.  Exit 77 (skip) without nginx or
# its rtmp module (Debian: nginx, libnginx-mod-rtmp).
set -u
pipelines=${1:?usage: test_rtmp.sh PIPELINES_DIR}
nginx=$(command -v nginx || echo /usr/sbin/nginx)
module=/usr/lib/nginx/modules/ngx_rtmp_module.so
[ -x "$nginx" ] || { echo "nginx not installed: skip"; exit 77; }
[ -f "$module" ] || { echo "libnginx-mod-rtmp not installed: skip"; exit 77; }
gst-inspect-1.0 rtmp2sink >/dev/null 2>&1 || { echo "rtmp2sink missing: skip"; exit 77; }
gst-inspect-1.0 x264enc >/dev/null 2>&1 || { echo "x264enc missing: skip"; exit 77; }

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
  [ -f "$dir/nginx.pid" ] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null
  [ -n "${reader:-}" ] && kill "$reader" 2>/dev/null
  sleep 0.2
  rm -rf "$dir"
}
trap cleanup EXIT
cat > "$dir/nginx.conf" <<CONF
load_module $module;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log;
worker_processes 1;
events { worker_connections 64; }
rtmp {
  server {
    listen 127.0.0.1:$port;
    application live { live on; }
  }
}
CONF
"$nginx" -p "$dir" -c "$dir/nginx.conf" &
for i in $(seq 50); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null && break
  sleep 0.1
done

url=rtmp://127.0.0.1:$port/live/test
# The reader joins first and counts the frames it decodes.
timeout 120 gst-launch-1.0 -v rtmp2src location="$url" ! flvdemux name=d \
  d.video ! h264parse ! avdec_h264 ! \
  fakesink name=frames silent=false sync=false \
  > "$dir/reader.log" 2>&1 &
reader=$!
sleep 1
if ! timeout 180 sh "$pipelines/rtmp-live.sh" -m tiny -e x264 -n 4 "$url" \
    > "$dir/sender.log" 2>&1; then
  echo "sender failed:"; cat "$dir/sender.log"; exit 1
fi
sleep 2
kill "$reader" 2>/dev/null; wait "$reader" 2>/dev/null; reader=
frames=$(grep -c "frames: last-message = chain" "$dir/reader.log")
echo "frames read back over RTMP: $frames"
if [ "$frames" -lt 1 ]; then
  echo "no frames arrived"; tail -20 "$dir/reader.log"; cat "$dir/error.log"
  exit 1
fi

# At its default the script streams until interrupted: SIGINT (Ctrl-C) must
# end it with exit status 0 within 10 s once frames arrive.  This caught
# ditgenerate ignoring the EOS that gst-launch-1.0 -e sends on SIGINT.
timeout 120 gst-launch-1.0 -v rtmp2src location="$url" ! flvdemux name=d \
  d.video ! h264parse ! avdec_h264 ! \
  fakesink name=frames silent=false sync=false \
  > "$dir/reader2.log" 2>&1 &
reader=$!
sleep 1
sh "$pipelines/rtmp-live.sh" -m tiny -e x264 "$url" > "$dir/sender2.log" 2>&1 &
sender=$!
i=0
until grep -q "frames: last-message = chain" "$dir/reader2.log"; do
  i=$((i + 1))
  if [ $i -gt 600 ] || ! kill -0 "$sender" 2>/dev/null; then
    echo "no frames from the unlimited sender:"; cat "$dir/sender2.log"
    kill -9 "$sender" 2>/dev/null; exit 1
  fi
  sleep 0.1
done
kill -INT "$sender"
i=0
while kill -0 "$sender" 2>/dev/null; do
  i=$((i + 1))
  if [ $i -gt 100 ]; then
    echo "rtmp-live.sh still running 10 s after SIGINT:"
    tail -5 "$dir/sender2.log"; kill -9 "$sender"; exit 1
  fi
  sleep 0.1
done
wait "$sender"
rc=$?
echo "rtmp-live.sh (until interrupted) exited $rc after SIGINT"
[ "$rc" -eq 0 ] || { cat "$dir/sender2.log"; exit 1; }
exit 0
