#!/usr/bin/env bash
# bench/gitops_reference.sh DUMP BARE WORK: the command-line side of bench/gitops (see
# bench/README.md). Makes the same tenant onboardings as bench/gitops_bench with the git command
# line, the way a script without capstan would: a working clone WORK of the empty bare
# repository BARE; first the seed commit (not timed); then for every change folder of DUMP (as
# `gitops_bench --dump DUMP` writes it), in order and one at a time: write its files, remove its
# delete paths, regenerate tenants/<t>/kustomization.yaml and tenants/kustomization.yaml from
# the folders (the same lists and format as capstan's finalize hook), `git add -A` of those paths,
# `git commit -F message` (the message and trailers capstan would write for that change alone),
# `git push origin main`. Author and committer: GIT_AUTHOR_NAME / GIT_AUTHOR_EMAIL (default
# capstan / capstan@localhost). Automatic gc is off in the clone and BARE, as the engine never
# runs one (this only helps the command line).
#
# Prints one JSON line: {"changes", "seconds", "changes_per_s", "commits", "cpu_seconds",
# "changes_per_s_first_tenth", "changes_per_s_last_tenth"}: seconds from the first change to the
# last push, the CPU time (user + system) of the script and every git process it ran meanwhile,
# and the rate over the first and over the last tenth of the changes. Exit 0, or nonzero when a git command failed.
set -euo pipefail

if [ $# -ne 3 ]; then
    echo "usage: $0 DUMP BARE WORK" >&2
    exit 2
fi
dump=$(cd "$1" && pwd)
bare=$2
work=$3
export LC_ALL=C # bytewise glob order, as capstan sorts
export GIT_AUTHOR_NAME=${GIT_AUTHOR_NAME:-capstan}
export GIT_AUTHOR_EMAIL=${GIT_AUTHOR_EMAIL:-capstan@localhost}
export GIT_COMMITTER_NAME=$GIT_AUTHOR_NAME
export GIT_COMMITTER_EMAIL=$GIT_AUTHOR_EMAIL
# no user or system configuration changes what is measured
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null

header='apiVersion: "kustomize.config.k8s.io/v1beta1"
kind: "Kustomization"'

# tenants/<t>/kustomization.yaml: the tenant's .yaml files, then environments/<e> (none when the
# folder is gone).
tenant_list() {
    local t=$1 f n entries=""
    for f in "tenants/$t"/*.yaml; do
        [ -f "$f" ] || continue
        n=${f##*/}
        [ "$n" = kustomization.yaml ] && continue
        entries+="- \"$n\""$'\n'
    done
    for f in "tenants/$t/environments"/*/; do
        [ -d "$f" ] || continue
        f=${f%/}
        entries+="- \"environments/${f##*/}\""$'\n'
    done
    if [ -z "$entries" ]; then
        [ -e "tenants/$t/kustomization.yaml" ] && rm -f "tenants/$t/kustomization.yaml"
        return 0
    fi
    printf '%s\nresources:\n%s' "$header" "$entries" >"tenants/$t/kustomization.yaml"
}

# tenants/kustomization.yaml: every tenant folder.
tenants_index() {
    local d entries=""
    for d in tenants/*/; do
        [ -d "$d" ] || continue
        d=${d%/}
        entries+="- \"${d#tenants/}\""$'\n'
    done
    if [ -z "$entries" ]; then
        printf '%s\nresources: []\n' "$header" >tenants/kustomization.yaml
    else
        printf '%s\nresources:\n%s' "$header" "$entries" >tenants/kustomization.yaml
    fi
}

git -C "$bare" config gc.auto 0
git clone -q "$bare" "$work" 2>/dev/null
cd "$work"
work=$PWD
git config gc.auto 0
git symbolic-ref HEAD refs/heads/main
cp -R "$dump/seed/files/." .
git add -A
git commit -q -F "$dump/seed/message"
git push -q origin main

# CPU seconds (user + system) of this shell and its children, from the `times` builtin
# into $cpu (`times` runs in this shell: in a command substitution it would describe a subshell)
cpu_now() {
    times >"$work/.git/cpu-times"
    cpu=$(awk '{ for (i = 1; i <= NF; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] } }
               END { printf "%.3f", s }' "$work/.git/cpu-times")
}

dirs=("$dump"/[0-9]*/)
tenth=$((${#dirs[@]} / 10))
t_first=0 t_last=0
changes=0
cpu_now
cpu0=$cpu
start=$EPOCHREALTIME
for d in "${dirs[@]}"; do
    d=${d%/}
    read -r t <"$d/tenant"
    # only the paths the change touched: `git add -A` alone would rescan the whole work tree
    paths=("tenants/$t" tenants/kustomization.yaml)
    cp -R "$d/files/." .
    while IFS= read -r p; do
        if [ -n "$p" ] && [ -e "$p" ]; then
            rm -rf -- "$p"
            paths+=("$p")
        fi
    done <"$d/delete"
    tenant_list "$t"
    tenants_index
    git add -A -- "${paths[@]}"
    git commit -q -F "$d/message"
    git push -q origin main
    changes=$((changes + 1))
    [ "$changes" = "$tenth" ] && t_first=$EPOCHREALTIME
    [ "$changes" = $((${#dirs[@]} - tenth)) ] && t_last=$EPOCHREALTIME
done
end=$EPOCHREALTIME
cpu_now
cpu1=$cpu

commits=$(($(git rev-list --count main) - 1)) # without the seed commit
awk -v n="$changes" -v s="$start" -v e="$end" -v c="$commits" -v c0="$cpu0" -v c1="$cpu1" \
    -v k="$tenth" -v tf="$t_first" -v tl="$t_last" 'BEGIN {
    t = e - s
    first = (k > 0 && tf > s) ? k / (tf - s) : 0
    last = (k > 0 && tl > 0 && e > tl) ? k / (e - tl) : 0
    printf "{\"changes\":%d,\"seconds\":%.6f,\"changes_per_s\":%.3f,\"commits\":%d,\"cpu_seconds\":%.3f,", n, t, (t > 0 ? n / t : 0), c, c1 - c0
    printf "\"changes_per_s_first_tenth\":%.3f,\"changes_per_s_last_tenth\":%.3f}\n", first, last }'
