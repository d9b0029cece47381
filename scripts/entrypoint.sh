#!/usr/bin/env bash
# Entrypoint of both bgeft images. Sets up the accelerator environment in the process that runs
# the command, then replaces itself with that command (so signals reach it: SIGTERM -> checkpoint).
#
# Ascend: CANN's set_env.sh scripts only export variables, so they must be sourced here at run
# time; a `RUN source .../set_env.sh` layer in a Dockerfile changes nothing for later layers.
# The CUDA image has no /usr/local/Ascend and skips this part.
#
# BGEFT_ASCEND_ROOT (default /usr/local/Ascend) says where CANN is installed.
set -eo pipefail

ascend_root="${BGEFT_ASCEND_ROOT:-/usr/local/Ascend}"

source_if_present() {
    local file="$1"
    shift
    if [[ -f "$file" ]]; then
        # CANN's scripts read unset variables and may return non-zero from their last test;
        # neither means the environment is broken, so relax the shell options while sourcing.
        set +eu
        # shellcheck disable=SC1090
        source "$file" "$@"
        set -e
    fi
}

source_if_present "$ascend_root/ascend-toolkit/set_env.sh"
# CANN 9 also ships the BiSheng compiler (ascendnpu-ir) environment inside the toolkit home.
if [[ -n "${ASCEND_TOOLKIT_HOME:-}" ]]; then
    source_if_present "$ASCEND_TOOLKIT_HOME/share/info/ascendnpu-ir/bin/set_env.sh"
fi
# NNAL (ATB operator library) ships with the CANN images; its script takes the C++ ABI of torch_npu.
source_if_present "$ascend_root/nnal/atb/set_env.sh" "--cxx_abi=${ATB_CXX_ABI:-1}"

if [[ $# -eq 0 ]]; then
    set -- bgeft --help
fi
exec "$@"
