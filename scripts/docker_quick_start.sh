#!/usr/bin/env bash
# Prove the Docker setup end to end on this host in a few minutes:
#   1. checks Docker (and reports the NVIDIA runtime / npu-smi / Compose it finds),
#   2. creates data/ custom_data/ outputs/ cache/ next to the repository, owned by the user the
#      container runs as,
#   3. builds the image (CUDA, or the Ascend image with --npu),
#   4. builds the small embedded demo model into cache/models/minilm-m3,
#   5. trains recipes/demo_cpu_m3.yaml with it on the CPU into outputs/demo.
#
#   scripts/docker_quick_start.sh [--npu] [--dry-run] [--refresh-base]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROG="docker_quick_start.sh"
# shellcheck source=scripts/docker_common.sh
source "$ROOT/scripts/docker_common.sh"

NPU=0
DRY_RUN=0
REFRESH_BASE=0
IMAGE_OVERRIDE=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --npu) NPU=1 ;;
        --dry-run) DRY_RUN=1 ;;
        --refresh-base) REFRESH_BASE=1 ;;
        -h | --help)
            sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "$PROG: error: unknown argument '$1' (use --npu, --dry-run, --refresh-base)" >&2
            exit 2
            ;;
    esac
    shift
done

say() { echo "==> $*" >&2; }

# 1. prerequisites
say "checking prerequisites"
need_docker
if [[ "$NPU" == 1 ]]; then
    need_npu
    say "Ascend driver found (npu-smi)"
    IMAGE="$(npu_tag)"
    DOCKERFILE=Dockerfile.npu
else
    runtimes="$(docker info --format '{{json .Runtimes}}' 2> /dev/null || true)"
    if [[ "$runtimes" == *nvidia* ]]; then
        say "NVIDIA runtime found: ./run_docker_training.sh single|multi can use the GPUs"
    else
        say "no NVIDIA runtime in docker: the demo runs on the CPU; install nvidia-container-toolkit before GPU training"
    fi
    IMAGE="$(cuda_tag)"
    DOCKERFILE=Dockerfile
fi
if docker compose version > /dev/null 2>&1; then
    say "Compose found: docker compose"
elif command -v docker-compose > /dev/null 2>&1; then
    say "Compose found: docker-compose"
else
    say "no Docker Compose: fine for the scripts; docker-compose.yml needs the compose plugin"
fi

# 2. host directories, owned by the container user (the invoking user, or uid 1000 for root)
say "host directories under $ROOT"
owner="$(user_args)"
ensure_host_dirs cache/models

# 3. the image
say "image $IMAGE"
ensure_image "$IMAGE" "$DOCKERFILE"

# 4. the embedded demo model (real all-MiniLM-L6-v2 weights from a pip package; no download)
demo_model=/cache/models/minilm-m3
if [[ -d "$ROOT/cache/models/minilm-m3" ]]; then
    say "demo model already in cache/models/minilm-m3"
else
    say "building the demo model into cache/models/minilm-m3"
    # no device is mounted here: torch must not autoload torch_npu (it fails without the driver)
    run_or_print docker run --rm --user "$owner" -e TORCH_DEVICE_BACKEND_AUTOLOAD=0 -v "$ROOT/cache:/cache" \
        -- "$IMAGE" bgeft demo-model "$demo_model"
fi

# 5. a CPU-sized training run
say "training recipes/demo_cpu_m3.yaml on the CPU into outputs/demo"
dry=()
if [[ "$DRY_RUN" == 1 ]]; then
    dry=(--dry-run)
fi
npu=()
if [[ "$NPU" == 1 ]]; then
    npu=(--npu)
fi
"$ROOT/run_docker_training.sh" cpu "${npu[@]+"${npu[@]}"}" --image "$IMAGE" --recipe "$ROOT/recipes/demo_cpu_m3.yaml" \
    "${dry[@]+"${dry[@]}"}" -- \
    "model.model_name_or_path=$demo_model" training.output_dir=/workspace/outputs/demo --overwrite
if [[ "$DRY_RUN" != 1 ]]; then
    say "done: the fine-tuned demo model is in $ROOT/outputs/demo"
    say "next: ./run_docker_training.sh multi --recipe recipes/bge-m3_unified.yaml"
fi
