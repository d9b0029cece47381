# bgeft CUDA image: FlagEmbedding fine-tuning of BGE-M3 / BGE rerankers on NVIDIA GPUs.
#
#   ./run_docker_training.sh build            # tags bgeft:<version>-cuda<CUDA>-torch<TORCH>
#   docker build -t bgeft:0.1.0-cuda12.6-torch2.13.0 .
#
# Base: PyTorch's *devel* image (CUDA toolkit + nvcc inside), so DeepSpeed can JIT-build its fused
# ops (cpu_adam for ZeRO offload, fused_adam) at run time. Pinned pairings this file relies on:
#   pytorch/pytorch:2.13.0-cuda12.6-cudnn9-devel : torch 2.13.0, CUDA 12.6, cuDNN 9, Ubuntu 24.04 with
#                                                  the system Python 3.12 (the official images no longer use conda)
#   faiss-gpu-cu12 1.14.1.post1                    : needs a CUDA 12 runtime >= 12.1 and numpy 2.x
#   deepspeed 0.19.8                               : torch >= 2.0, ops built on first use
# Another base (another torch or CUDA 12.x tag of pytorch/pytorch) goes in with
#   --build-arg BASE_IMAGE=pytorch/pytorch:<torch>-cuda<X>-cudnn9-devel --build-arg TORCH_VERSION=<torch> --build-arg CUDA_VERSION=<X>
# and the last build step fails if the three disagree.
#
# The same file builds on a CPU base (tests/containers does, on a Debian + Python 3.11 + CPU torch
# image it makes itself): DEVICE=cpu, REQUIREMENTS=requirements/cpu.txt, and the verify step then
# checks for a torch built without CUDA.
#   docker build --build-arg BASE_IMAGE=<debian+torch-cpu> --build-arg DEVICE=cpu \
#       --build-arg REQUIREMENTS=requirements/cpu.txt -t bgeft:cpu .
ARG BASE_IMAGE=pytorch/pytorch:2.13.0-cuda12.6-cudnn9-devel
FROM ${BASE_IMAGE}
ARG BASE_IMAGE

ARG TORCH_VERSION=2.13.0
ARG CUDA_VERSION=12.6
# cuda | cpu: what the verify step expects torch to be built for
ARG DEVICE=cuda
ARG REQUIREMENTS=requirements/cuda.txt
ARG BGEFT_UID=1000
ARG BGEFT_GID=1000

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# The base's Python is Ubuntu's, marked "externally managed" (PEP 668); an image is the one place
# where installing into it is right, so pip may.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/cache/huggingface \
    XDG_CACHE_HOME=/cache/xdg \
    TORCH_EXTENSIONS_DIR=/cache/torch_extensions \
    TRITON_CACHE_DIR=/cache/triton \
    MPLCONFIGDIR=/cache/matplotlib \
    DS_BUILD_OPS=0

WORKDIR /workspace

# 1. Python dependencies, pinned. The base image's torch/triton/nvidia-* wheels are frozen as
#    constraints first, so the resolver can never swap the CUDA build of torch for another one.
#    Installed from the hash-locked lock next to the pins (requirements/cuda.lock, written by
#    scripts/lock_requirements.py with the index's published sha256 of every file) with
#    --require-hashes; a requirements file without a lock (the CPU test base's) installs its pins.
COPY ${REQUIREMENTS} requirements/*.lock requirements/
RUN lock="${REQUIREMENTS%.txt}.lock" \
    && python3 -m pip list --format=freeze \
        | grep -iE '^(torch|torchvision|torchaudio|triton|nvidia-[a-z0-9-]+)==' > /tmp/base-constraints.txt \
    && if [ -f "${lock}" ]; then \
           python3 -m pip install --require-hashes -c /tmp/base-constraints.txt -r "${lock}"; \
       else \
           python3 -m pip install -c /tmp/base-constraints.txt -r "${REQUIREMENTS}"; \
       fi \
    && rm /tmp/base-constraints.txt

# 2. bgeft itself (dependencies are all above; --no-deps keeps the pins exactly as installed).
COPY pyproject.toml README.md /tmp/bgeft-src/
COPY src /tmp/bgeft-src/src
COPY recipes /tmp/bgeft-src/recipes
COPY ds_configs /tmp/bgeft-src/ds_configs
COPY example_data /tmp/bgeft-src/example_data
COPY pipelines /tmp/bgeft-src/pipelines
RUN python3 -m pip install --no-deps /tmp/bgeft-src \
    && rm -rf /tmp/bgeft-src

# 3. Recipes, DeepSpeed configs, example data and scripts where users look for them.
COPY recipes recipes
COPY ds_configs ds_configs
COPY example_data example_data
COPY pipelines pipelines
COPY scripts scripts

# 4. Non-root user owning the writable places. A uid 1000 user that the base image may already
#    have (Ubuntu 24.04 ships "ubuntu") is renamed instead of clashing.
RUN if getent passwd "${BGEFT_UID}" > /dev/null; then \
        usermod --login bgeft --home /home/bgeft --move-home "$(getent passwd "${BGEFT_UID}" | cut -d: -f1)"; \
    else \
        (getent group "${BGEFT_GID}" > /dev/null || groupadd --gid "${BGEFT_GID}" bgeft) \
        && useradd --uid "${BGEFT_UID}" --gid "${BGEFT_GID}" --create-home --shell /bin/bash bgeft; \
    fi \
    && mkdir -p /workspace/outputs /workspace/data /workspace/custom_data /cache/huggingface \
    && chown -R "${BGEFT_UID}:${BGEFT_GID}" /workspace/outputs /cache \
    && chmod -R g+rwX /workspace/outputs /cache \
    && chmod 0755 scripts/entrypoint.sh scripts/docker_quick_start.sh

# 5. Prove the image: every pin, the torch build and the imports (fails the build on drift).
RUN case "${DEVICE}" in \
        cuda) built_for="${CUDA_VERSION}" ;; \
        cpu) built_for=none ;; \
        *) echo "DEVICE=${DEVICE}: use cuda or cpu" >&2; exit 1 ;; \
    esac \
    && python3 scripts/verify_image.py "${REQUIREMENTS}" \
        --torch "${TORCH_VERSION}" --cuda "${built_for}" \
        --import torch FlagEmbedding transformers deepspeed faiss sentence_transformers yaml bgeft \
    && bgeft ls > /dev/null

# 6. What this image is: OCI labels and the same facts in /etc/bgeft-image.json (runs record it in
#    environment.json). Set by scripts/docker_base.sh build_image; declared last so a new
#    BGEFT_CREATED rebuilds only this step.
ARG BASE_DIGEST=unknown
ARG BGEFT_VERSION=unknown
ARG BGEFT_REVISION=unknown
ARG BGEFT_SOURCE=unknown
ARG BGEFT_CREATED=unknown
LABEL org.opencontainers.image.title="bgeft" \
      org.opencontainers.image.version="${BGEFT_VERSION}" \
      org.opencontainers.image.revision="${BGEFT_REVISION}" \
      org.opencontainers.image.source="${BGEFT_SOURCE}" \
      org.opencontainers.image.created="${BGEFT_CREATED}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      org.opencontainers.image.base.digest="${BASE_DIGEST}"
RUN python3 scripts/image_record.py /etc/bgeft-image.json --flavor "${DEVICE}" --base-image "${BASE_IMAGE}" \
        --base-digest "${BASE_DIGEST}" --version "${BGEFT_VERSION}" --revision "${BGEFT_REVISION}" \
        --source "${BGEFT_SOURCE}" --created "${BGEFT_CREATED}"

USER ${BGEFT_UID}:${BGEFT_GID}

# A training run is a batch process, not a service: liveness is the process itself (and the
# Kubernetes Job / docker run exit code), so the image declares no health probe.
HEALTHCHECK NONE

ENTRYPOINT ["/workspace/scripts/entrypoint.sh"]
CMD ["bgeft", "--help"]
