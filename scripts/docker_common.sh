#!/usr/bin/env bash
# Shared by run_docker_training.sh and scripts/docker_quick_start.sh (sourced, not run).
# Expects ROOT (the repository root) and PROG (the calling script's name) to be set.

# Prefix for the host's system paths (/dev, /usr/local/Ascend, ...); empty on a real host, a fake
# tree in tests.
HOST_ROOT="${BGEFT_HOST_ROOT:-}"

die() {
    echo "$PROG: error: $*" >&2
    exit 1
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
    command -v docker > /dev/null 2>&1 \
        || die "docker not found on PATH: install Docker Engine (https://docs.docker.com/engine/install/)"
    docker info --format '{{json .Runtimes}}' > /dev/null 2>&1 \
        || die "cannot talk to the Docker daemon: start it (sudo systemctl start docker) or add your user to the 'docker' group"
}

need_nvidia() {
    local runtimes
    runtimes="$(docker info --format '{{json .Runtimes}}' 2> /dev/null || true)"
    if [[ "$runtimes" != *nvidia* ]] && ! command -v nvidia-container-runtime-hook > /dev/null 2>&1; then
        die "the NVIDIA Container Toolkit is missing (docker has no 'nvidia' runtime): install nvidia-container-toolkit, then run 'sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker'"
    fi
}

need_npu() {
    command -v npu-smi > /dev/null 2>&1 \
        || die "npu-smi not found on PATH: install the Ascend NPU driver and firmware on this host first"
    [[ -d "$HOST_ROOT/usr/local/Ascend/driver" ]] \
        || die "$HOST_ROOT/usr/local/Ascend/driver not found: the Ascend driver must be installed on this host"
    [[ -e "$HOST_ROOT/dev/davinci_manager" ]] \
        || die "$HOST_ROOT/dev/davinci_manager not found: the Ascend driver is not loaded (check 'npu-smi info')"
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
    # shellcheck disable=SC2034  # RUN is read by the sourcing script
    RUN=(docker run --rm --init --ipc=host --ulimit memlock=-1 --ulimit stack=67108864
        --user "$(user_args)" --workdir /workspace
        -e HF_TOKEN -e HF_ENDPOINT -e HF_HUB_OFFLINE
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
    if [[ -z "$IMAGE_OVERRIDE" ]] && ! docker image inspect "$1" > /dev/null 2>&1; then
        echo "$PROG: image $1 not found locally: building it first" >&2
        build_image "$1" "$2"
    fi
}

ensure_host_dirs() {
    local d
    for d in data custom_data outputs cache; do
        if [[ ! -d "$ROOT/$d" ]]; then
            if [[ "$DRY_RUN" == 1 ]]; then
                echo "$PROG: would create $ROOT/$d" >&2
            else
                mkdir -p "$ROOT/$d"
            fi
        fi
    done
}

# build_image: the base pinned by digest (docker/base-images.lock), OCI labels
# shellcheck source=scripts/docker_base.sh
source "$ROOT/scripts/docker_base.sh"
