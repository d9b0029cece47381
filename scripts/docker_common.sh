#!/usr/bin/env bash
# Shared by run_docker_training.sh and scripts/docker_quick_start.sh (sourced, not run).
# Expects ROOT (the repository root) and PROG (the calling script's name) to be set.

# Prefix for the host's system paths (/dev, /usr/local/Ascend, ...); empty on a real host, a fake
# tree in tests.
HOST_ROOT="${BGEFT_HOST_ROOT:-}"
# Seconds between SIGTERM and SIGKILL (the SIGTERM checkpoint needs them): the one grace period, also
# compose's stop_grace_period, the manifests' terminationGracePeriodSeconds and bgeft's
# launch.STOP_GRACE_SECONDS (tests/deploy/test_deploy_layout.py checks they agree).
GRACE_SECONDS="${BGEFT_STOP_GRACE_SECONDS:-900}"

die() {
    echo "$PROG: error: $*" >&2
    exit 1
}

warn() {
    echo "$PROG: warning: $*" >&2
}

# A missing host prerequisite: an error, except with --dry-run, which still prints every command
# (so it can be read on a machine without Docker or devices) and lists what is missing.
need() {
    if [[ "${DRY_RUN:-0}" == 1 ]]; then
        warn "$* (--dry-run: printing the commands anyway)"
        return 0
    fi
    die "$@"
}

# Docker's image reference grammar (distribution/reference, reference/regexp.go):
# [HOST[:PORT]/]PATH[:TAG][@DIGEST], lower-case path components. Anything else (an option such as
# --privileged, a space, an upper-case name) is refused before it reaches a docker command line.
valid_image() {
    local part='[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*'
    local host='([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(\.([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(:[0-9]+)?'
    local tag='[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}'
    local digest='[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}'
    [[ "$1" =~ ^(${host}/)?${part}(/${part})*(:${tag})?(@${digest})?$ ]] && [[ ${#1} -le 255 ]]
}

check_image() {
    valid_image "$1" || die "--image '$1' is not an image reference: use NAME[:TAG] or REGISTRY/NAME[:TAG][@sha256:DIGEST] (lower-case name, no spaces, not an option)"
}

# Print a command so that a shell (or shlex.split) reads back exactly the same words.
print_cmd() {
    local out="" word
    for word in "$@"; do
        if [[ "$word" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
            out+="$word "
        else
            out+="'${word//\'/\'\\\'\'}' "
        fi
    done
    printf '%s\n' "${out% }"
}

# ---- image tags, read from the files that define them -------------------------------------------
project_version() {
    sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/pyproject.toml" | head -n 1
}

cuda_tag() {
    local base torch cuda
    base="$(sed -n 's/^ARG BASE_IMAGE=//p' "$ROOT/Dockerfile" | head -n 1)"
    torch="$(sed -n 's/^ARG TORCH_VERSION=//p' "$ROOT/Dockerfile" | head -n 1)"
    cuda="$(sed -n 's/^ARG CUDA_VERSION=//p' "$ROOT/Dockerfile" | head -n 1)"
    [[ -n "$base" && -n "$torch" && -n "$cuda" ]] || die "cannot read BASE_IMAGE/TORCH_VERSION/CUDA_VERSION from $ROOT/Dockerfile"
    echo "bgeft:$(project_version)-cuda${cuda}-torch${torch}"
}

npu_tag() {
    local cann torch_npu
    cann="$(sed -n 's/^ARG CANN_VERSION=//p' "$ROOT/Dockerfile.npu" | head -n 1)"
    torch_npu="$(sed -n 's/^torch-npu==//p' "$ROOT/requirements/npu.txt" | head -n 1)"
    [[ -n "$cann" && -n "$torch_npu" ]] || die "cannot read CANN_VERSION ($ROOT/Dockerfile.npu) or torch-npu (requirements/npu.txt)"
    echo "bgeft:$(project_version)-cann${cann}-torch_npu${torch_npu}"
}

# ---- prerequisites ---------------------------------------------------------------------------------
need_docker() {
    if ! command -v docker > /dev/null 2>&1; then
        need "docker not found on PATH: install Docker Engine (https://docs.docker.com/engine/install/)"
    elif ! docker info --format '{{json .Runtimes}}' > /dev/null 2>&1; then
        need "cannot talk to the Docker daemon: start it (sudo systemctl start docker) or add your user to the 'docker' group"
    fi
}

need_nvidia() {
    local runtimes
    runtimes="$(docker info --format '{{json .Runtimes}}' 2> /dev/null || true)"
    if [[ "$runtimes" != *nvidia* ]] && ! command -v nvidia-container-runtime-hook > /dev/null 2>&1; then
        need "the NVIDIA Container Toolkit is missing (docker has no 'nvidia' runtime): install nvidia-container-toolkit, then run 'sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker'"
    fi
}

need_npu() {
    command -v npu-smi > /dev/null 2>&1 \
        || need "npu-smi not found on PATH: install the Ascend NPU driver and firmware on this host first"
    [[ -d "$HOST_ROOT/usr/local/Ascend/driver" ]] \
        || need "$HOST_ROOT/usr/local/Ascend/driver not found: the Ascend driver must be installed on this host"
    [[ -e "$HOST_ROOT/dev/davinci_manager" ]] \
        || need "$HOST_ROOT/dev/davinci_manager not found: the Ascend driver is not loaded (check 'npu-smi info')"
}

# ---- docker run pieces -----------------------------------------------------------------------------
user_args() {
    local uid gid
    uid="$(id -u)"
    gid="$(id -g)"
    if [[ "$uid" == 0 ]]; then
        uid=1000
        gid=1000
    fi
    echo "$uid:$gid"
}

# Sets RUN: the docker run words every training container gets (the caller appends to it).
base_run() {
    # --init (tini) is PID 1 and passes docker stop's SIGTERM on to bgeft, which passes it to the
    # workers; --stop-timeout is how long docker waits before SIGKILL (its default is 10 s).
    # no-new-privileges: nothing in the container can gain privileges (setuid binaries included)
    # shellcheck disable=SC2034  # RUN is read by the sourcing script
    RUN=(docker run --rm --init --stop-timeout "$GRACE_SECONDS" --ipc=host --ulimit memlock=-1
        --ulimit stack=67108864 --security-opt no-new-privileges --user "$(user_args)" --workdir /workspace)
    # a uid the image does not know joins the image's group (1000), which may write /etc/passwd,
    # so the entrypoint can give it a user entry and a HOME
    if [[ "$(user_args)" != 1000:* ]]; then
        RUN+=(--group-add 1000)
    fi
    RUN+=(
        -e HF_TOKEN -e HF_ENDPOINT -e HF_HUB_OFFLINE -e "BGEFT_STOP_GRACE_SECONDS=$GRACE_SECONDS"
        -v "$ROOT/data:/workspace/data:ro"
        -v "$ROOT/custom_data:/workspace/custom_data:ro"
        -v "$ROOT/outputs:/workspace/outputs"
        -v "$ROOT/cache:/cache")
}

# Callers set DRY_RUN (0/1) and IMAGE_OVERRIDE (empty unless --image was given).
run_or_print() {
    if [[ "$DRY_RUN" == 1 ]]; then
        print_cmd "$@"
    else
        "$@"
    fi
}

ensure_image() {  # $1: tag, $2: Dockerfile
    if [[ -z "$IMAGE_OVERRIDE" ]] && ! docker image inspect -- "$1" > /dev/null 2>&1; then
        echo "$PROG: image $1 not found locally: building it first" >&2
        build_image "$1" "$2"
    fi
}

# data/ custom_data/ outputs/ cache/ next to the repository, owned by the container's user: run as
# root, docker would create missing mount sources as root and the container (uid 1000) could not
# write outputs/ or cache/. $1...: extra directories (relative to ROOT) to create the same way.
ensure_host_dirs() {
    local d owner
    owner="$(user_args)"
    for d in data custom_data outputs cache "$@"; do
        if [[ "$DRY_RUN" == 1 ]]; then
            [[ -d "$ROOT/$d" ]] || echo "$PROG: would create $ROOT/$d" >&2
            continue
        fi
        mkdir -p "$ROOT/$d"
        if [[ "$(id -u)" == 0 ]]; then
            chown "$owner" "$ROOT/$d"
        fi
    done
}

# build_image: the base pinned by digest (docker/base-images.lock), OCI labels
# shellcheck source=scripts/docker_base.sh
source "$ROOT/scripts/docker_base.sh"
