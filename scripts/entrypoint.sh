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

# A host uid the image does not know (docker run --user 1234:1234): no passwd entry means HOME=/,
# getpass.getuser() raising and C code (HCCL, ssh, some tokenizers) failing to look the user up.
# Give it an entry and a writable HOME: appended to /etc/passwd when the image made it writable for
# this process (its group; the launchers add that group and no-new-privileges), else through
# nss_wrapper when the library is there (NSS_WRAPPER_PASSWD), else HOME/USER/LOGNAME alone.
# BGEFT_PASSWD_FILE (default /etc/passwd) lets the tests use a copy.
ensure_user() {
    local uid gid passwd home name lib
    uid="$(id -u)"
    gid="$(id -g)"
    passwd="${BGEFT_PASSWD_FILE:-/etc/passwd}"
    if cut -d: -f3 "$passwd" 2> /dev/null | grep -qx "$uid"; then
        return 0
    fi
    name="bgeft-$uid"
    home="${TMPDIR:-/tmp}/bgeft-home-$uid"
    mkdir -p "$home"
    if [[ -w "$passwd" ]]; then
        printf '%s:x:%s:%s:bgeft (host uid %s):%s:/bin/bash\n' "$name" "$uid" "$gid" "$uid" "$home" >> "$passwd"
    else
        cat "$passwd" > "$home/passwd" 2> /dev/null || : > "$home/passwd"
        printf '%s:x:%s:%s:bgeft (host uid %s):%s:/bin/bash\n' "$name" "$uid" "$gid" "$uid" "$home" >> "$home/passwd"
        lib="$(find /usr/lib /usr/lib64 /lib -name 'libnss_wrapper.so*' 2> /dev/null | head -n 1 || true)"
        if [[ -n "$lib" ]]; then
            export NSS_WRAPPER_PASSWD="$home/passwd" NSS_WRAPPER_GROUP=/etc/group
            export LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}"
        fi
    fi
    export HOME="$home" USER="$name" LOGNAME="$name"
}
ensure_user

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
