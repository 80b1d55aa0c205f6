#!/usr/bin/env bash
# Swap a local cluster's CoreDNS for clusterdns, and back.
#
#   deploy/swap.sh install [--cluster kind|k3d|minikube] [--name NAME] [options]
#   deploy/swap.sh restore [--cluster kind|k3d|minikube] [--name NAME] [options]
#
# install: builds the image (docker build -f deploy/Dockerfile -t clusterdns:dev
# <repo root>), loads it into the cluster's nodes, backs up the Deployment and
# ConfigMap kube-system/coredns, switches only the Deployment's container image
# to clusterdns:dev (the cluster's own Corefile runs unchanged), waits for the
# rollout and runs a smoke query from a pod. If the rollout fails, the pod logs
# are shown and the backed-up image is put back (unless --no-rollback).
# restore: puts the backed-up image (and imagePullPolicy) back, waits, smoke-tests.
#
# See deploy/README.md. Run deploy/swap.sh --help for the options.

set -euo pipefail

readonly IMAGE_DEFAULT='clusterdns:dev'
readonly NAMESPACE='kube-system'
readonly DEPLOYMENT='coredns'
readonly CONFIGMAP='coredns'

SCRIPT_PATH="${BASH_SOURCE[0]}"
[[ "$SCRIPT_PATH" == */* ]] || SCRIPT_PATH="./$SCRIPT_PATH"
SCRIPT_DIR="$(cd "${SCRIPT_PATH%/*}" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
readonly SCRIPT_DIR REPO_ROOT

usage() {
  cat <<EOF
Usage: deploy/swap.sh install|restore [options]

Swap the CoreDNS of a local kind, k3d or minikube cluster for clusterdns, and back.

Commands:
  install             build and load the image, back up CoreDNS, switch the image, smoke-test
  restore             put the backed-up CoreDNS image back, smoke-test

Options:
  --cluster TYPE      kind, k3d or minikube (default: guessed from the kubectl context)
  --name NAME         cluster name (default: kind "kind", k3d "k3s-default", minikube "minikube")
  --context CTX       kubectl context (default: kind-NAME, k3d-NAME, or NAME for minikube)
  --image REF         image reference to build and use (default: $IMAGE_DEFAULT)
  --skip-build        do not build the image (it must already exist in the local Docker engine)
  --backup-dir DIR    where backups go (default: \${XDG_STATE_HOME:-~/.local/state}/clusterdns-swap/CTX)
  --timeout DUR       rollout timeout, 180s or 3m (default: 180s); crash-looping pods fail it early
  --smoke-image REF   image of the smoke-test pod (default: busybox:1.28, as in the Kubernetes DNS debugging guide)
  --no-smoke          skip the smoke query
  --no-rollback       on a failed install rollout, leave the cluster as it is (do not restore)
  -h, --help          this help

Environment: DOCKER (default docker) is the container CLI used to build.
EOF
}

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'error: %s\n\n' "$*" >&2; usage >&2; exit 2; }

# require TOOL HINT: fail with an install hint when TOOL is not on PATH.
require() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' is required but was not found on PATH. $2"
}

COMMAND=''
CLUSTER=''
NAME=''
CONTEXT=''
IMAGE="$IMAGE_DEFAULT"
SKIP_BUILD=0
BACKUP_ROOT="${XDG_STATE_HOME:-${HOME:-/tmp}/.local/state}/clusterdns-swap"
BACKUP_DIR=''
TIMEOUT='180s'
TIMEOUT_SECONDS=180
SMOKE_IMAGE='busybox:1.28'
SMOKE=1
ROLLBACK=1
DOCKER="${DOCKER:-docker}"

parse_args() {
  [[ $# -gt 0 ]] || usage_error 'a command is required: install or restore'
  case "$1" in
    install|restore) COMMAND="$1" ;;
    -h|--help|help) usage; exit 0 ;;
    *) usage_error "unknown command '$1' (expected install or restore)" ;;
  esac
  shift
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --cluster|--name|--context|--image|--backup-dir|--timeout|--smoke-image)
        [[ $# -ge 2 && -n "$2" ]] || usage_error "$1 needs a value"
        case "$1" in
          --cluster) CLUSTER="$2" ;;
          --name) NAME="$2" ;;
          --context) CONTEXT="$2" ;;
          --image) IMAGE="$2" ;;
          --backup-dir) BACKUP_DIR="$2" ;;
          --timeout) TIMEOUT="$2" ;;
          --smoke-image) SMOKE_IMAGE="$2" ;;
        esac
        shift 2 ;;
      --cluster=*) CLUSTER="${1#*=}"; shift ;;
      --name=*) NAME="${1#*=}"; shift ;;
      --context=*) CONTEXT="${1#*=}"; shift ;;
      --image=*) IMAGE="${1#*=}"; shift ;;
      --backup-dir=*) BACKUP_DIR="${1#*=}"; shift ;;
      --timeout=*) TIMEOUT="${1#*=}"; shift ;;
      --smoke-image=*) SMOKE_IMAGE="${1#*=}"; shift ;;
      --skip-build) SKIP_BUILD=1; shift ;;
      --no-smoke) SMOKE=0; shift ;;
      --no-rollback) ROLLBACK=0; shift ;;
      -h|--help) usage; exit 0 ;;
      *) usage_error "unknown option '$1'" ;;
    esac
  done
  case "$CLUSTER" in
    ''|kind|k3d|minikube) ;;
    *) usage_error "--cluster must be kind, k3d or minikube, not '$CLUSTER'" ;;
  esac
  if [[ "$TIMEOUT" =~ ^([0-9]+)(s?)$ ]]; then
    TIMEOUT_SECONDS="${BASH_REMATCH[1]}"
  elif [[ "$TIMEOUT" =~ ^([0-9]+)m$ ]]; then
    TIMEOUT_SECONDS=$((BASH_REMATCH[1] * 60))
  else
    usage_error "--timeout must be seconds (180, 180s) or minutes (3m), not '$TIMEOUT'"
  fi
}

# Settles CLUSTER, NAME and CONTEXT: from the flags, else from the current context.
resolve_cluster() {
  if [[ -z "$CLUSTER" ]]; then
    local current
    current="$(kubectl config current-context 2>/dev/null || true)"
    case "$current" in
      kind-*) CLUSTER=kind; NAME="${NAME:-${current#kind-}}" ;;
      k3d-*) CLUSTER=k3d; NAME="${NAME:-${current#k3d-}}" ;;
      '') die 'no --cluster given and kubectl has no current context; pass --cluster kind|k3d|minikube' ;;
      *)
        if [[ "$current" == minikube ]] || { command -v minikube >/dev/null 2>&1 && minikube profile list -o json 2>/dev/null | grep -q "\"Name\":\"$current\""; }; then
          CLUSTER=minikube; NAME="${NAME:-$current}"
        else
          die "cannot tell the cluster type from kubectl context '$current'; pass --cluster kind|k3d|minikube (this script is for local clusters only)"
        fi ;;
    esac
  fi
  case "$CLUSTER" in
    kind) NAME="${NAME:-kind}"; CONTEXT="${CONTEXT:-kind-$NAME}" ;;
    k3d) NAME="${NAME:-k3s-default}"; CONTEXT="${CONTEXT:-k3d-$NAME}" ;;
    minikube) NAME="${NAME:-minikube}"; CONTEXT="${CONTEXT:-$NAME}" ;;
  esac
  BACKUP_DIR="${BACKUP_DIR:-$BACKUP_ROOT/$CONTEXT}"
}

check_tools() {
  require kubectl 'Install it: https://kubernetes.io/docs/tasks/tools/'
  if [[ "$COMMAND" == install ]]; then
    case "$CLUSTER" in
      kind) require kind 'Install it: https://kind.sigs.k8s.io/docs/user/quick-start/#installation' ;;
      k3d) require k3d 'Install it: https://k3d.io/#installation' ;;
      minikube) require minikube 'Install it: https://minikube.sigs.k8s.io/docs/start/' ;;
    esac
    # The build needs a Docker engine, and kind, k3d and minikube load the image from it.
    require "$DOCKER" 'A Docker engine is needed to build the image and load it into the cluster (set DOCKER=... for another docker-compatible CLI).'
    "$DOCKER" info >/dev/null 2>&1 || die "'$DOCKER info' failed: is the Docker engine running and reachable?"
  fi
}

k() { kubectl --context "$CONTEXT" "$@"; }

check_cluster() {
  k get --raw /readyz >/dev/null 2>&1 || die "cannot reach the cluster of kubectl context '$CONTEXT' (is the $CLUSTER cluster '$NAME' running?)"
  k -n "$NAMESPACE" get deployment "$DEPLOYMENT" >/dev/null 2>&1 \
    || die "deployment $NAMESPACE/$DEPLOYMENT not found in context '$CONTEXT': this cluster's DNS is not the standard CoreDNS Deployment"
}

# The container of the Deployment to swap: `coredns` in kubeadm (kind, minikube)
# and k3s (k3d) alike; otherwise the only container, else give up.
container_name() {
  local names
  names="$(k -n "$NAMESPACE" get deployment "$DEPLOYMENT" -o jsonpath='{range .spec.template.spec.containers[*]}{.name}{"\n"}{end}')"
  if grep -qx coredns <<<"$names"; then
    echo coredns
  elif [[ "$(grep -c . <<<"$names")" -eq 1 ]]; then
    warn "the CoreDNS container is named '$names', not 'coredns'; using it"
    echo "$names"
  else
    die "deployment $NAMESPACE/$DEPLOYMENT has containers [$(tr '\n' ' ' <<<"$names")] and none is named coredns"
  fi
}

container_field() { # container_field CONTAINER FIELD
  k -n "$NAMESPACE" get deployment "$DEPLOYMENT" -o jsonpath="{.spec.template.spec.containers[?(@.name==\"$1\")].$2}"
}

build_image() {
  if [[ "$SKIP_BUILD" -eq 1 ]]; then
    log "skipping the build (--skip-build); using $IMAGE"
    return
  fi
  log "building $IMAGE from $REPO_ROOT (deploy/Dockerfile)"
  DOCKER_BUILDKIT=1 "$DOCKER" build -f "$REPO_ROOT/deploy/Dockerfile" -t "$IMAGE" "$REPO_ROOT"
}

load_image() {
  log "loading $IMAGE into $CLUSTER cluster '$NAME'"
  case "$CLUSTER" in
    kind) kind load docker-image "$IMAGE" --name "$NAME" ;;
    k3d) k3d image import "$IMAGE" --cluster "$NAME" ;;
    minikube) minikube image load "$IMAGE" --profile "$NAME" ;;
  esac
}

backup() {
  local container="$1" image
  image="$(container_field "$container" image)"
  mkdir -p "$BACKUP_DIR"
  if [[ "$image" == "$IMAGE" || "$image" == *clusterdns* ]]; then
    # Already swapped (a second install, or another clusterdns tag): never back up clusterdns as "CoreDNS".
    [[ -s "$BACKUP_DIR/image" ]] || die "the Deployment already runs $image but there is no backup in $BACKUP_DIR: pass --backup-dir, or put the CoreDNS image back by hand (kubectl -n $NAMESPACE set image deployment/$DEPLOYMENT $container=<coredns image>)"
    log "already swapped ($image); keeping the backup of $(head -n1 "$BACKUP_DIR/image") in $BACKUP_DIR"
    return
  fi
  log "backing up deployment and configmap $NAMESPACE/coredns to $BACKUP_DIR"
  k -n "$NAMESPACE" get deployment "$DEPLOYMENT" -o yaml >"$BACKUP_DIR/deployment.yaml"
  k -n "$NAMESPACE" get configmap "$CONFIGMAP" -o yaml >"$BACKUP_DIR/configmap.yaml"
  k -n "$NAMESPACE" get configmap "$CONFIGMAP" -o jsonpath='{.data.Corefile}' >"$BACKUP_DIR/Corefile"
  printf '%s\n' "$image" >"$BACKUP_DIR/image"
  printf '%s\n' "$container" >"$BACKUP_DIR/container"
  container_field "$container" imagePullPolicy >"$BACKUP_DIR/imagePullPolicy"
  echo >>"$BACKUP_DIR/imagePullPolicy"
  log "CoreDNS image was $image"
}

# Pods of IMAGE that are crash-looping or cannot get their image, as "name (reason)" lines.
failing_pods() {
  k -n "$NAMESPACE" get pods -l k8s-app=kube-dns -o jsonpath='{range .items[*]}{.metadata.name}{"\t"}{.spec.containers[*].image}{"\t"}{.status.containerStatuses[*].restartCount}{"\t"}{.status.containerStatuses[*].state.waiting.reason}{"\n"}{end}' 2>/dev/null \
    | awk -F '\t' -v image="$1" '$2 == image && ($3 + 0 >= 2 || $4 ~ /CrashLoopBackOff|ErrImagePull|ImagePullBackOff|ErrImageNeverPull|InvalidImageName|CreateContainer(Config)?Error|RunContainerError/) {
        print $1 " (" ($4 != "" ? $4 : "restarted " $3 " times") ")" }' || true
}

# Waits until the Deployment is rolled out with IMAGE; fails early when its pods crash-loop.
wait_rollout() {
  local image="$1" deadline=$((SECONDS + TIMEOUT_SECONDS)) failing
  log "waiting for the rollout of deployment/$DEPLOYMENT with $image (timeout ${TIMEOUT_SECONDS}s)"
  while :; do
    if k -n "$NAMESPACE" rollout status "deployment/$DEPLOYMENT" --timeout 5s >/dev/null 2>&1; then
      log 'rollout complete'
      return 0
    fi
    failing="$(failing_pods "$image")"
    if [[ -n "$failing" ]]; then
      warn "pods running $image are failing: $(tr '\n' ' ' <<<"$failing")"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      warn "the rollout did not complete within ${TIMEOUT_SECONDS}s"
      return 1
    fi
  done
}

show_pods_and_logs() {
  k -n "$NAMESPACE" get pods -l k8s-app=kube-dns -o wide >&2 || true
  local pod
  for pod in $(k -n "$NAMESPACE" get pods -l k8s-app=kube-dns -o jsonpath='{.items[*].metadata.name}' 2>/dev/null || true); do
    printf -- '--- logs of %s\n' "$pod" >&2
    k -n "$NAMESPACE" logs "$pod" --tail 30 >&2 2>&1 || true
    k -n "$NAMESPACE" logs "$pod" --previous --tail 30 >&2 2>/dev/null || true
  done
}

smoke_test() {
  if [[ "$SMOKE" -eq 0 ]]; then
    log 'skipping the smoke query (--no-smoke)'
    return
  fi
  local pod="clusterdns-smoke-$RANDOM"
  log "smoke query: nslookup kubernetes.default from pod $pod ($SMOKE_IMAGE)"
  if ! k run "$pod" --namespace default --rm -i --restart=Never --quiet \
      --image "$SMOKE_IMAGE" --pod-running-timeout=2m \
      --overrides='{"apiVersion":"v1","spec":{"terminationGracePeriodSeconds":0}}' \
      -- nslookup kubernetes.default; then
    k delete pod "$pod" --namespace default --ignore-not-found --wait=false >/dev/null 2>&1 || true
    return 1
  fi
}

set_image() { # set_image CONTAINER IMAGE PULLPOLICY
  k -n "$NAMESPACE" set image "deployment/$DEPLOYMENT" "$1=$2"
  if [[ -n "$3" && "$(container_field "$1" imagePullPolicy)" != "$3" ]]; then
    local index
    index="$(k -n "$NAMESPACE" get deployment "$DEPLOYMENT" -o jsonpath='{range .spec.template.spec.containers[*]}{.name}{"\n"}{end}' | grep -nx "$1" | cut -d: -f1)"
    k -n "$NAMESPACE" patch deployment "$DEPLOYMENT" --type json \
      -p "[{\"op\":\"replace\",\"path\":\"/spec/template/spec/containers/$((index - 1))/imagePullPolicy\",\"value\":\"$3\"}]"
  fi
}

do_install() {
  build_image
  load_image
  local container current
  container="$(container_name)"
  backup "$container"
  current="$(container_field "$container" image)"
  if [[ "$current" == "$IMAGE" ]]; then
    # Same tag: the pod template does not change, so restart to pick up the newly loaded image.
    log "restarting deployment/$DEPLOYMENT to run the newly loaded $IMAGE"
    k -n "$NAMESPACE" rollout restart "deployment/$DEPLOYMENT"
  else
    log "switching container $container of deployment/$DEPLOYMENT to $IMAGE (the ConfigMap $NAMESPACE/$CONFIGMAP is unchanged)"
    # The image exists only on the nodes: never try to pull it.
    set_image "$container" "$IMAGE" IfNotPresent
  fi
  if ! wait_rollout "$IMAGE"; then
    warn "the rollout of $IMAGE did not complete"
    show_pods_and_logs
    if [[ "$ROLLBACK" -eq 1 ]]; then
      warn 'putting the CoreDNS image back'
      do_restore
    fi
    die "install failed; the backup is in $BACKUP_DIR"
  fi
  if ! smoke_test; then
    show_pods_and_logs
    die "clusterdns is running but the smoke query failed; run 'deploy/swap.sh restore --cluster $CLUSTER --name $NAME' to go back"
  fi
  log "done: cluster DNS of '$CONTEXT' is now $IMAGE; the backup is in $BACKUP_DIR"
}

do_restore() {
  [[ -s "$BACKUP_DIR/image" ]] || die "no backup in $BACKUP_DIR (was install run for context '$CONTEXT'? pass --backup-dir)"
  local image container policy
  image="$(head -n1 "$BACKUP_DIR/image")"
  container="$(head -n1 "$BACKUP_DIR/container" 2>/dev/null || echo coredns)"
  policy="$(head -n1 "$BACKUP_DIR/imagePullPolicy" 2>/dev/null || true)"
  log "restoring container $container of deployment/$DEPLOYMENT to $image"
  set_image "$container" "$image" "$policy"
  # The ConfigMap was never changed by install; only say so if someone else changed it.
  if [[ -f "$BACKUP_DIR/Corefile" ]] \
      && [[ "$(k -n "$NAMESPACE" get configmap "$CONFIGMAP" -o jsonpath='{.data.Corefile}')" != "$(cat "$BACKUP_DIR/Corefile")" ]]; then
    warn "the Corefile in configmap $NAMESPACE/$CONFIGMAP changed since the backup; it is left as it is (backup: $BACKUP_DIR/configmap.yaml)"
  fi
  wait_rollout "$image" || { show_pods_and_logs; die "the rollout of $image did not complete"; }
  smoke_test || { show_pods_and_logs; die "CoreDNS is back but the smoke query failed"; }
  log "done: cluster DNS of '$CONTEXT' is CoreDNS ($image) again"
}

main() {
  parse_args "$@"
  require kubectl 'Install it: https://kubernetes.io/docs/tasks/tools/'
  resolve_cluster
  check_tools
  check_cluster
  log "$COMMAND on $CLUSTER cluster '$NAME' (kubectl context '$CONTEXT')"
  "do_$COMMAND"
}

main "$@"
