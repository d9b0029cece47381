#!/usr/bin/env bash
# Train in the bgeft container on NVIDIA GPUs or Huawei Ascend NPUs, with data and outputs on the host.
#
#   ./run_docker_training.sh                       # on a terminal: a menu
#   ./run_docker_training.sh multi --recipe recipes/bge-m3_unified.yaml -- training.learning_rate=5e-6
#   ./run_docker_training.sh single --gpus 2 --dry-run
#   ./run_docker_training.sh npu --gpus 0,1,2,3
#   ./run_docker_training.sh cpu --recipe recipes/demo_cpu_m3.yaml
#   ./run_docker_training.sh single --pipeline my_book.yaml -- work_dir=/workspace/outputs/my_book
#   ./run_docker_training.sh shell [--npu]
#   ./run_docker_training.sh shell --cpu -- bgeft env      # one command, no terminal needed
#   ./run_docker_training.sh build [--npu]
#
# Uses plain `docker run` (Docker Compose is not needed; docker-compose.yml offers the same setup).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROG="run_docker_training.sh"
DEFAULT_RECIPE="recipes/bge-m3_unified.yaml"
# shellcheck source=scripts/docker_common.sh
source "$ROOT/scripts/docker_common.sh"

usage() {
    cat <<EOF
usage: $PROG [single|multi|npu|cpu|shell|build] [--recipe FILE | --pipeline FILE] [--gpus LIST]
                              [--npu | --cpu] [--image TAG] [--dry-run] [--refresh-base] [-- bgeft-arguments...]

modes:
  single   train on one GPU (the first of --gpus, default GPU 0)
  multi    train on all visible GPUs (or --gpus 0,1,...), torchrun inside the container
  npu      train on Ascend NPUs (all, or --gpus 0,1,... as ASCEND_RT_VISIBLE_DEVICES)
  cpu      train on the CPU (demo recipes; no GPU or NPU needed; the Ascend image with --npu)
  shell    interactive bash in the image (GPUs, NPUs with --npu, no accelerator with --cpu);
           with -- COMMAND... it runs that command instead (no terminal needed)
  build    build the image (CUDA, or Ascend with --npu), FROM its base pinned by digest

options:
  --recipe FILE  recipe to train (default $DEFAULT_RECIPE next to this script). A file on this host is mounted
                 read-only at /workspace/custom_recipes; otherwise FILE is a path inside the image.
  --pipeline FILE
                 run \`bgeft pipeline run FILE\` instead of training one recipe. A file on this host:
                 its directory is mounted read-only at /workspace/custom_pipelines (relative paths in
                 the file, e.g. its books and questions, resolve there); otherwise FILE is a path inside
                 the image (pipelines/demo_cpu.yaml) or a shipped pipeline's name (book_retrieval).
                 work_dir: pass -- work_dir=/workspace/outputs/NAME (outputs/NAME here). Without it,
                 bgeft moves a work_dir from the file that is not under /workspace/outputs (../outputs/X
                 from the file is) to /workspace/outputs/<file name without .yaml>, with a note.
                 Books and questions outside the file's directory go in data/ or custom_data/: in
                 the file ../data/book.txt, or
                 -- corpus.books=[data/book.txt] (overrides resolve from /workspace).
  --gpus LIST    device ids, e.g. 0 or 0,1,3
  --npu          shell/build: use the Ascend image
  --cpu          shell: no GPU or NPU (a CPU-only host, like the cpu mode)
  --image TAG    image to use instead of the default tag (a docker image reference)
  --dry-run      print the docker commands instead of running them (anywhere before --; missing
                 host prerequisites become warnings)
  --refresh-base resolve the base image's tag to its current digest again (a build otherwise reuses
                 the digest recorded in docker/base-images.lock)
  -- ARGS...     passed to \`bgeft train\` (overrides like training.learning_rate=5e-6, --resume), or
                 with --pipeline to \`bgeft pipeline run\` (rounds=2, --from mine, --dry-run)

Host directories next to this script: data/ and custom_data/ (read-only in the container),
outputs/ and cache/ (writable; models download to cache/huggingface).
EOF
}

usage_error() {
    echo "$PROG: error: $1" >&2
    echo "run '$PROG --help' for usage" >&2
    exit 2
}

gpu_args() {  # $1: "one" or "all"
    if [[ "$1" == one ]]; then
        RUN+=(--gpus "\"device=${GPUS:-0}\"")
    elif [[ -n "$GPUS" ]]; then
        RUN+=(--gpus "\"device=$GPUS\"")
    else
        RUN+=(--gpus all)
    fi
}

npu_args() {
    local dev gid
    while IFS= read -r dev; do
        RUN+=(--device "$dev:/dev/${dev##*/}")
    done < <(find "$HOST_ROOT/dev" -maxdepth 1 -name 'davinci[0-9]*' | sort -V)
    [[ "${RUN[*]}" == *"/dev/davinci"[0-9]* ]] || need "no $HOST_ROOT/dev/davinci[0-9]* devices found: check 'npu-smi info'"
    for dev in davinci_manager devmm_svm hisi_hdc; do
        RUN+=(--device "$HOST_ROOT/dev/$dev:/dev/$dev")
    done
    RUN+=(-v "$HOST_ROOT/usr/local/Ascend/driver:/usr/local/Ascend/driver:ro")
    if [[ -e "$HOST_ROOT/usr/local/dcmi" ]]; then
        RUN+=(-v "$HOST_ROOT/usr/local/dcmi:/usr/local/dcmi:ro")
    fi
    if [[ -e "$HOST_ROOT/usr/local/bin/npu-smi" ]]; then
        RUN+=(-v "$HOST_ROOT/usr/local/bin/npu-smi:/usr/local/bin/npu-smi:ro")
    fi
    if [[ -e "$HOST_ROOT/etc/ascend_install.info" ]]; then
        RUN+=(-v "$HOST_ROOT/etc/ascend_install.info:/etc/ascend_install.info:ro")
    fi
    # the device files belong to the driver's group (HwHiAiUser); the container user joins it
    gid="$(getent group HwHiAiUser 2> /dev/null | cut -d: -f3 || true)"
    if [[ -n "$gid" ]]; then
        RUN+=(--group-add "$gid")
    fi
    if [[ -n "$GPUS" ]]; then
        RUN+=(-e "ASCEND_RT_VISIBLE_DEVICES=$GPUS")
    fi
}

# Sets CONTAINER_RECIPE and adds the mount for a recipe file that lives on this host.
recipe_args() {
    if [[ "$RECIPE_GIVEN" == 0 && ! -f "$RECIPE" ]]; then
        RECIPE="$DEFAULT_RECIPE"   # no recipes/ next to this script: the image's copy
    fi
    if [[ -f "$RECIPE" ]]; then
        local dir
        dir="$(cd "$(dirname "$RECIPE")" && pwd)"
        [[ "$dir" != *:* ]] || die "the recipe's directory '$dir' contains ':', which docker -v cannot mount: move the recipe"
        RUN+=(-v "$dir:/workspace/custom_recipes:ro")
        CONTAINER_RECIPE="/workspace/custom_recipes/$(basename "$RECIPE")"
    else
        [[ "$RECIPE" != /* ]] || die "recipe '$RECIPE' not found on this host"
        echo "$PROG: note: '$RECIPE' is not a file here; using it as a path inside the image (/workspace/$RECIPE)" >&2
        CONTAINER_RECIPE="$RECIPE"
    fi
}

# Sets CONTAINER_PIPELINE and adds the mount for a pipeline file that lives on this host (its whole
# directory: the books, questions and recipes it names by relative path come with it).
pipeline_args() {
    if [[ -f "$PIPELINE" ]]; then
        local dir
        dir="$(cd "$(dirname "$PIPELINE")" && pwd)"
        [[ "$dir" != *:* ]] || die "the pipeline's directory '$dir' contains ':', which docker -v cannot mount: move the pipeline file"
        RUN+=(-v "$dir:/workspace/custom_pipelines:ro")
        CONTAINER_PIPELINE="/workspace/custom_pipelines/$(basename "$PIPELINE")"
    else
        [[ "$PIPELINE" != /* ]] || die "pipeline '$PIPELINE' not found on this host"
        echo "$PROG: note: '$PIPELINE' is not a file here; using it as a path inside the image (/workspace/$PIPELINE) or a shipped pipeline's name" >&2
        CONTAINER_PIPELINE="$PIPELINE"
    fi
}

choose_mode() {
    local choice
    echo "bgeft in Docker: what do you want to run?" >&2
    PS3="number> "
    select choice in "single: train on one GPU" "multi: train on all GPUs" "npu: train on Ascend NPUs" \
        "cpu: train on the CPU (demo recipes)" "shell: bash in the CUDA image" "build: build the CUDA image" "quit"; do
        case "${choice%%:*}" in
            single | multi | npu | cpu | shell | build) MODE="${choice%%:*}" ;;
            quit) exit 0 ;;
            *) echo "pick a number from the list" >&2; continue ;;
        esac
        break
    done
    [[ -n "$MODE" ]] || exit 2
}

# ---- arguments -------------------------------------------------------------------------------------
MODE=""
RECIPE="$ROOT/$DEFAULT_RECIPE"   # the default resolves next to this script, not in the working directory
RECIPE_GIVEN=0
PIPELINE=""
GPUS=""
NPU=0
CPU=0
DRY_RUN=0
REFRESH_BASE=0
IMAGE_OVERRIDE=""
IMAGE_GIVEN=0
EXTRA=()

while [[ $# -gt 0 ]]; do
    case "$1" in
        --recipe) [[ $# -ge 2 ]] || usage_error "--recipe needs a FILE"; RECIPE="$2"; RECIPE_GIVEN=1; shift 2 ;;
        --recipe=*) RECIPE="${1#*=}"; RECIPE_GIVEN=1; shift ;;
        --pipeline) [[ $# -ge 2 ]] || usage_error "--pipeline needs a FILE"; PIPELINE="$2"; shift 2 ;;
        --pipeline=*) PIPELINE="${1#*=}"; shift ;;
        --gpus) [[ $# -ge 2 ]] || usage_error "--gpus needs a LIST like 0,1"; GPUS="$2"; shift 2 ;;
        --gpus=*) GPUS="${1#*=}"; shift ;;
        --image) [[ $# -ge 2 ]] || usage_error "--image needs a TAG"; IMAGE_OVERRIDE="$2"; IMAGE_GIVEN=1; shift 2 ;;
        --image=*) IMAGE_OVERRIDE="${1#*=}"; IMAGE_GIVEN=1; shift ;;
        --npu) NPU=1; shift ;;
        --cpu) CPU=1; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        --refresh-base) REFRESH_BASE=1; shift ;;
        -h | --help) usage; exit 0 ;;
        --) shift; EXTRA=("$@"); break ;;
        -*) usage_error "unknown argument '$1' (arguments for bgeft train or bgeft pipeline run go after --)" ;;
        *)
            [[ -z "$MODE" ]] || usage_error "unknown argument '$1' after mode '$MODE' (arguments for bgeft train or bgeft pipeline run go after --)"
            MODE="$1"
            shift
            ;;
    esac
done
if [[ -n "$PIPELINE" && "$RECIPE_GIVEN" == 1 ]]; then
    usage_error "--pipeline and --recipe cannot be used together: a pipeline names its own recipes (train_embedder.recipe, train_reranker.recipe; change them with -- train_embedder.recipe=FILE)"
fi

if [[ -z "$MODE" ]]; then
    if [[ -t 0 && -t 1 ]]; then
        choose_mode
    else
        usage >&2
        exit 2
    fi
fi
case "$MODE" in
    single | multi | npu | cpu | shell | build) ;;
    *) usage_error "unknown mode '$MODE': use single, multi, npu, cpu, shell or build" ;;
esac
[[ -z "$GPUS" || "$GPUS" =~ ^[0-9]+(,[0-9]+)*$ ]] || usage_error "--gpus '$GPUS': use device ids like 0 or 0,1,3"
if [[ "$MODE" == single && "$GPUS" == *,* ]]; then
    usage_error "single trains on one GPU; use 'multi --gpus $GPUS' for several"
fi
if [[ -n "$PIPELINE" && ( "$MODE" == shell || "$MODE" == build ) ]]; then
    usage_error "--pipeline runs in single, multi, npu or cpu mode, not in $MODE"
fi
if [[ "$CPU" == 1 && "$MODE" != shell ]]; then
    usage_error "--cpu is for shell; to train on the CPU use the cpu mode"
fi
if [[ "$CPU" == 1 && "$NPU" == 1 ]]; then
    usage_error "--cpu and --npu cannot be used together"
fi
[[ "$MODE" == npu ]] && NPU=1
[[ "$IMAGE_GIVEN" == 0 ]] || check_image "$IMAGE_OVERRIDE"

if [[ "$NPU" == 1 ]]; then
    IMAGE="${IMAGE_OVERRIDE:-$(npu_tag)}"
    DOCKERFILE=Dockerfile.npu
else
    IMAGE="${IMAGE_OVERRIDE:-$(cuda_tag)}"
    DOCKERFILE=Dockerfile
fi

need_docker
if [[ "$MODE" == build ]]; then
    build_image "$IMAGE" "$DOCKERFILE"
    exit 0
fi

if [[ "$MODE" == cpu || "$CPU" == 1 ]]; then
    :
elif [[ "$NPU" == 1 ]]; then
    need_npu
else
    need_nvidia
fi
# shellcheck disable=SC2119  # the launcher needs no directories beyond the four
ensure_host_dirs
ensure_image "$IMAGE" "$DOCKERFILE"

base_run
if [[ "$MODE" == cpu || "$CPU" == 1 ]]; then
    # no --gpus and no /dev/davinci*: the container sees no accelerator. A host whose default docker
    # runtime is nvidia would still inject every GPU unless NVIDIA_VISIBLE_DEVICES says none
    # (NVIDIA Container Toolkit: "void" = no GPU), and without the driver torch must not autoload
    # torch_npu, which raises when libascend_hal.so is missing (torch/__init__.py,
    # _import_device_backends; TORCH_DEVICE_BACKEND_AUTOLOAD=0 turns it off).
    RUN+=(-e NVIDIA_VISIBLE_DEVICES=void)
    if [[ "$NPU" == 1 ]]; then
        RUN+=(-e TORCH_DEVICE_BACKEND_AUTOLOAD=0)
    fi
elif [[ "$NPU" == 1 ]]; then
    npu_args
elif [[ "$MODE" == single ]]; then
    gpu_args one
else
    gpu_args all
fi

if [[ "$MODE" == shell && ${#EXTRA[@]} -gt 0 ]]; then
    if [[ -t 0 && -t 1 ]]; then
        RUN+=(-it)
    fi
    RUN+=(-- "$IMAGE" "${EXTRA[@]}")
elif [[ "$MODE" == shell ]]; then
    [[ "$DRY_RUN" == 1 || ( -t 0 && -t 1 ) ]] || die "shell needs an interactive terminal (or a command: shell -- bgeft env)"
    # "--" ends docker run's options: nothing from here on can be read as one (docker/cli parses
    # with spf13/pflag, whose "--" terminator docker run honours before IMAGE)
    RUN+=(-it -- "$IMAGE" bash)
elif [[ -n "$PIPELINE" ]]; then
    pipeline_args
    if [[ -t 0 && -t 1 ]]; then
        RUN+=(-it)
    fi
    # The stages' outputs must land on the writable outputs/ mount: bgeft moves a work_dir written in the
    # file that lies elsewhere to /workspace/outputs/<file name> and says so (-- work_dir=... is kept).
    # Training stages launch `bgeft train` with every device the container sees (one in single mode).
    RUN+=(-- "$IMAGE" bgeft pipeline run --outputs-root /workspace/outputs "$CONTAINER_PIPELINE"
          ${EXTRA[@]+"${EXTRA[@]}"})
else
    recipe_args
    if [[ -t 0 && -t 1 ]]; then
        RUN+=(-it)
    fi
    RUN+=(-- "$IMAGE" bgeft train "$CONTAINER_RECIPE")
    case "$MODE" in
        # one process: bgeft itself switches off what needs several processes
        single | cpu) RUN+=(launch.nproc_per_node=1) ;;
        multi) RUN+=(launch.nproc_per_node=auto) ;;
    esac
    RUN+=(${EXTRA[@]+"${EXTRA[@]}"})
fi

if [[ "$DRY_RUN" == 1 ]]; then
    print_cmd "${RUN[@]}"
else
    exec "${RUN[@]}"
fi
