# bgeft CUDA image: FlagEmbedding fine-tuning of BGE-M3 / BGE rerankers on NVIDIA GPUs.
#
#   ./run_docker_training.sh build            # tags bgeft:<version>-cuda<CUDA>-torch<TORCH>
#   docker build -t bgeft:0.1.0-cuda12.8-torch2.13.0 .
#
# Base: PyTorch's *devel* image (CUDA toolkit + nvcc inside), so DeepSpeed can JIT-build its fused
# ops (cpu_adam for ZeRO offload, fused_adam) at run time. Pinned pairings this file relies on:
#   pytorch/pytorch:2.13.0-cuda12.8-cudnn9-devel : torch 2.13.0, CUDA 12.8, cuDNN 9, Ubuntu 24.04 with
#                                                  the system Python 3.12 (the official images no longer use conda)
#   faiss-gpu-cu12 1.14.1.post1                    : needs a CUDA 12 runtime >= 12.1 and numpy 2.x;
#                                                  wheels for linux x86_64 ONLY (no aarch64: GH200/GB200
#                                                  hosts cannot build this image, step 0 says so)
#   deepspeed 0.19.8                               : torch >= 2.0, ops built on first use (fused_adam is
#                                                  built once in step 5 to prove the toolchain)
# CUDA 12.8 because PyTorch's CUDA 12.6 builds stop at sm_90: Blackwell GPUs (B200, GB200 sm_100,
# RTX 50xx sm_120) need the 12.8+ builds (PyTorch 2.7 release notes: "CUDA 12.8 ... Blackwell").
# The 12.6 build stays available for older drivers (CUDA 12.8 needs driver >= 570):
#   --build-arg BASE_IMAGE=pytorch/pytorch:2.13.0-cuda12.6-cudnn9-devel --build-arg CUDA_VERSION=12.6 \
#   --build-arg REQUIRE_ARCH="sm_80 sm_90"
# Another base (another torch or CUDA 12.x tag of pytorch/pytorch) goes in with
#   --build-arg BASE_IMAGE=pytorch/pytorch:<torch>-cuda<X>-cudnn9-devel --build-arg TORCH_VERSION=<torch> --build-arg CUDA_VERSION=<X>
# and the last build step fails if the three disagree.
#
# The same file builds on a CPU base (tests/containers does, on a Debian + Python 3.11 + CPU torch
# image it makes itself): DEVICE=cpu, REQUIREMENTS=requirements/cpu.txt, and the verify step then
# checks for a torch built without CUDA.
#   docker build --build-arg BASE_IMAGE=<debian+torch-cpu> --build-arg DEVICE=cpu \
#       --build-arg REQUIREMENTS=requirements/cpu.txt -t bgeft:cpu .
ARG BASE_IMAGE=pytorch/pytorch:2.13.0-cuda12.8-cudnn9-devel
FROM ${BASE_IMAGE}
ARG BASE_IMAGE

ARG TORCH_VERSION=2.13.0
ARG CUDA_VERSION=12.8
# GPU architectures the verify step requires torch to have kernels for (Ampere, Hopper, Blackwell)
ARG REQUIRE_ARCH="sm_80 sm_90 sm_100 sm_120"
# cuda | cpu: what the verify step expects torch to be built for
ARG DEVICE=cuda
ARG REQUIREMENTS=requirements/cuda.txt
ARG BGEFT_UID=1000
ARG BGEFT_GID=1000

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# 0. Platform: faiss-gpu-cu12 publishes linux x86_64 wheels only (PyPI, faiss-gpu-cu12 1.14.1.post1), so
#    on arm64 (GH200, GB200) pip would fail late with "no matching distribution". Stop now, saying why.
#    (tests/deploy/test_deploy_images.py runs this step with a fake uname)
RUN arch="$(uname -m)"; \
    if [ "${DEVICE}" = cuda ] && [ "${arch}" != x86_64 ]; then \
        echo "bgeft CUDA image: faiss-gpu-cu12 has no ${arch} wheels (linux x86_64 only), so this image" \
             "cannot be built on ${arch}; build it on an x86_64 host (docs/docker.md, 'arm64 GPU hosts')" >&2; \
        exit 1; \
    fi

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

# 4. Non-root user owning the writable places; /etc/passwd writable by its group, so the entrypoint
#    can add an entry for a host uid the image does not know (the launchers add the group and
#    no-new-privileges, which makes a writable passwd worthless for becoming root). A uid 1000 user that the base image may already
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
    && chgrp "${BGEFT_GID}" /etc/passwd && chmod g+w /etc/passwd \
    && chmod 0755 scripts/entrypoint.sh scripts/docker_quick_start.sh

# 5. Prove the image: every pin, the torch build and the imports (fails the build on drift). On CUDA
#    also the GPU architectures torch has kernels for (REQUIRE_ARCH) and DeepSpeed's FusedAdam, built
#    now (DS_ACCELERATOR=cuda: no GPU at build time; TORCH_CUDA_ARCH_LIST names what to compile) so a
#    missing compiler or CUDA_HOME fails the build, not the first optimizer step.
RUN case "${DEVICE}" in \
        cuda) built_for="${CUDA_VERSION}"; archs="${REQUIRE_ARCH}"; ops=FusedAdamBuilder ;; \
        cpu) built_for=none; archs=""; ops="" ;; \
        *) echo "DEVICE=${DEVICE}: use cuda or cpu" >&2; exit 1 ;; \
    esac \
    && TORCH_EXTENSIONS_DIR=/tmp/ds-ops-check TORCH_CUDA_ARCH_LIST="8.0;9.0;10.0;12.0" DS_ACCELERATOR="${DEVICE}" \
       python3 scripts/verify_image.py "${REQUIREMENTS}" \
        --torch "${TORCH_VERSION}" --cuda "${built_for}" --require-arch "${archs}" --load-op "${ops}" \
        --import torch FlagEmbedding transformers deepspeed faiss sentence_transformers yaml bgeft \
    && rm -rf /tmp/ds-ops-check \
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
