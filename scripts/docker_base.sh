#!/usr/bin/env bash
# Sourced by scripts/docker_common.sh: build an image FROM its base pinned by digest.
#
# The Dockerfiles name their base by tag (ARG BASE_IMAGE=...); tags move. Every build here resolves
# the tag to the digest it points to *on this host* (docker buildx imagetools inspect, else docker
# manifest inspect) and records it in docker/base-images.lock; later builds reuse the recorded digest
# until --refresh-base (REFRESH_BASE=1). No digest is ever written that the registry did not give.
# The build gets BASE_IMAGE=tag@digest and the OCI label facts (version, revision, source, created,
# base digest) that the Dockerfiles write into labels and /etc/bgeft-image.json.
# Expects ROOT, PROG, DRY_RUN (0/1) and REFRESH_BASE (0/1) and the helpers of docker_common.sh.

BASE_LOCK="$ROOT/docker/base-images.lock"
DIGEST_RE='^sha256:[0-9a-f]{64}$'

base_tag() {  # $1: Dockerfile -> the tag its ARG BASE_IMAGE names
    local tag
    tag="$(sed -n 's/^ARG BASE_IMAGE=//p' "$ROOT/$1" | head -n 1)"
    [[ -n "$tag" ]] || die "cannot read ARG BASE_IMAGE from $ROOT/$1"
    echo "$tag"
}

locked_digest() {  # $1: tag -> the digest recorded for it ("" when none)
    [[ -f "$BASE_LOCK" ]] || return 0
    awk -v tag="$1" '$1 == tag { print $2; exit }' "$BASE_LOCK"
}

registry_digest() {  # $1: tag -> the digest the registry gives for it now ("" when it cannot be asked)
    local out
    if out="$(docker buildx imagetools inspect --format '{{json .Manifest}}' "$1" 2> /dev/null)"; then
        out="$(printf '%s' "$out" | grep -oE '"digest": ?"sha256:[0-9a-f]{64}"' | head -n 1 | grep -oE 'sha256:[0-9a-f]{64}')"
    elif out="$(docker manifest inspect --verbose "$1" 2> /dev/null)"; then
        # one platform: its Descriptor's digest; a multi-platform list needs buildx to give the index digest
        if [[ "$(printf '%s' "$out" | grep -c '"Descriptor"')" == 1 ]]; then
            out="$(printf '%s' "$out" | grep -A3 '"Descriptor"' | grep -oE 'sha256:[0-9a-f]{64}' | head -n 1)"
        else
            out=""
        fi
    else
        out=""
    fi
    if [[ "$out" =~ $DIGEST_RE ]]; then
        echo "$out"
    fi
}

record_digest() {  # $1: tag, $2: digest -> docker/base-images.lock (the tag's old line replaced)
    local tmp
    mkdir -p "$(dirname "$BASE_LOCK")"
    tmp="$(mktemp "$BASE_LOCK.XXXXXX")"
    if [[ -f "$BASE_LOCK" ]]; then
        awk -v tag="$1" '$1 != tag' "$BASE_LOCK" > "$tmp"
    fi
    printf '%s %s %s\n' "$1" "$2" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$tmp"
    mv "$tmp" "$BASE_LOCK"
}

# Sets BASE_REF (tag@digest) and BASE_DIGEST for Dockerfile $1, or stops.
pin_base() {
    local tag digest
    tag="$(base_tag "$1")"
    digest=""
    if [[ "${REFRESH_BASE:-0}" != 1 ]]; then
        digest="$(locked_digest "$tag")"
        if [[ -n "$digest" && ! "$digest" =~ $DIGEST_RE ]]; then
            die "docker/base-images.lock: the entry for $tag is not a sha256 digest ('$digest'): delete the line and build with --refresh-base"
        fi
    fi
    if [[ -z "$digest" ]]; then
        digest="$(registry_digest "$tag")"
        if [[ -z "$digest" && "$DRY_RUN" == 1 ]]; then
            # --dry-run still prints the build, with the digest left for the registry to give
            need "cannot pin the base image $tag now (no docker/base-images.lock entry, registry not reachable)"
            BASE_REF="$tag@sha256:DIGEST-FROM-REGISTRY"
            BASE_DIGEST="sha256:DIGEST-FROM-REGISTRY"
            return 0
        fi
        if [[ -z "$digest" ]]; then
            die "cannot pin the base image $tag: docker/base-images.lock has no entry for it and the registry cannot be asked (docker buildx imagetools inspect / docker manifest inspect failed). Connect to the registry (docker login if it is private) and build again, or add the line '$tag sha256:<digest>' to docker/base-images.lock from a machine that can"
        fi
        if [[ "$DRY_RUN" == 1 ]]; then
            echo "$PROG: would record $tag -> $digest in docker/base-images.lock" >&2
        else
            record_digest "$tag" "$digest"
            echo "$PROG: base image $tag -> $digest (recorded in docker/base-images.lock; --refresh-base to move it)" >&2
        fi
    fi
    BASE_REF="$tag@$digest"
    BASE_DIGEST="$digest"
}

build_time() {  # SOURCE_DATE_EPOCH (reproducible builds) when set, else now
    if [[ -n "${SOURCE_DATE_EPOCH:-}" ]]; then
        date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ
    else
        date -u +%Y-%m-%dT%H:%M:%SZ
    fi
}

build_image() {  # $1: image tag, $2: Dockerfile
    local revision source
    pin_base "$2"
    revision="$(git -C "$ROOT" rev-parse HEAD 2> /dev/null || echo unknown)"
    source="$(git -C "$ROOT" remote get-url origin 2> /dev/null | sed -E 's#://[^/@]+@#://#' || true)"
    run_or_print docker build --file "$ROOT/$2" --tag "$1" \
        --build-arg "BASE_IMAGE=$BASE_REF" --build-arg "BASE_DIGEST=$BASE_DIGEST" \
        --build-arg "BGEFT_VERSION=$(project_version)" --build-arg "BGEFT_REVISION=$revision" \
        --build-arg "BGEFT_SOURCE=${source:-unknown}" --build-arg "BGEFT_CREATED=$(build_time)" \
        "$ROOT"
}
