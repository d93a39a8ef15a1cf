#!/usr/bin/env bash
# Report (default) or set transparent huge pages.
set -euo pipefail
usage() {
    cat <<'U'
Usage: tuning/thp.sh [--apply --mode never|madvise]

Reports /sys/kernel/mm/transparent_hugepage/{enabled,defrag}, khugepaged's defrag, and how much
anonymous memory is in huge pages now (AnonHugePages in /proc/meminfo).

For a log broker set `madvise` (or `never`), not `always`: with `always` the kernel may stall an
allocation to compact memory (direct compaction) and khugepaged rewrites page tables behind the
shards' backs — latency spikes of milliseconds. The broker's data lives in the page cache, which
THP does not cover anyway; shardlog does not madvise(MADV_HUGEPAGE) anything, so `madvise` and
`never` behave the same for it and `madvise` keeps the option open for other programs.

  --apply          write the mode (root only); sets `enabled` and `defrag` to MODE
  --mode MODE      never | madvise
  -h, --help       this text
U
}
here="$(cd "$(dirname "$0")" && pwd)"; source "$here/lib.sh"
apply=0; mode=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --apply) apply=1 ;;
        --mode) mode="${2:?--mode needs never or madvise}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
base="$SYS/kernel/mm/transparent_hugepage"
[[ -d "$base" ]] || { echo "no transparent huge page support in this kernel ($base missing)"; exit 0; }
sel() { sed -n 's/.*\[\([^]]*\)\].*/\1/p' "$1" 2>/dev/null; }
echo "enabled:           $(sel "$base/enabled")    ($(cat "$base/enabled"))"
echo "defrag:            $(sel "$base/defrag")    ($(cat "$base/defrag"))"
echo "khugepaged defrag: $(cat "$base/khugepaged/defrag" 2>/dev/null || echo n/a)"
echo "AnonHugePages:     $(awk '/AnonHugePages/ {print $2, $3}' "$PROC/meminfo" 2>/dev/null || echo n/a)"
case "$(sel "$base/enabled")" in
    always) echo "advice: 'always' risks compaction stalls; consider: tuning/thp.sh --apply --mode madvise" ;;
    *) echo "advice: fine for a broker (madvise/never)" ;;
esac
if [[ $apply -eq 1 ]]; then
    [[ "$mode" == never || "$mode" == madvise ]] || die "--apply needs --mode never|madvise"
    require_root
    write_value "$base/enabled" "$mode"
    write_value "$base/defrag" "$mode"
elif [[ -n "$mode" ]]; then
    echo "(report only: add --apply to set '$mode')"
fi
