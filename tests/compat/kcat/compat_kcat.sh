#!/usr/bin/env bash
# Compatibility checks with kcat (Debian's, linked to librdkafka 2.0.2: an old C client).
#
#   compat_kcat.sh BOOTSTRAP TOPIC
#
# TOPIC must exist with 3 partitions (kcat cannot create topics; run.sh creates it with
# the Python admin client). Prints `PASS kcat.NAME` / `FAIL kcat.NAME: reason` per check
# and exits 1 if any failed. Needs: kcat, awk.
#
# The last checks use a balanced consumer group (`kcat -G`, librdkafka's KafkaConsumer:
# JoinGroup/SyncGroup/Heartbeat, OffsetFetch, auto-commit on close, LeaveGroup).
set -euo pipefail

BOOTSTRAP=${1:?usage: compat_kcat.sh BOOTSTRAP TOPIC}
TOPIC=${2:?usage: compat_kcat.sh BOOTSTRAP TOPIC}
PARTITIONS=3
N=300
KEYS=11

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
failed=0

pass() { echo "PASS kcat.$1"; }
fail() {
    echo "FAIL kcat.$1: $2"
    failed=1
}
# Bounded kcat: never let a hung client hang the suite.
kc() { timeout 60 kcat -b "$BOOTSTRAP" -X socket.timeout.ms=15000 "$@"; }

# --- metadata ----------------------------------------------------------------------------
if kc -L -t "$TOPIC" >"$WORK/meta" 2>"$WORK/meta.err"; then
    nparts=$(grep -c 'partition [0-9]*, leader' "$WORK/meta" || true)
    if grep -q 'broker [0-9]* at ' "$WORK/meta" && [[ $nparts -eq $PARTITIONS ]] &&
        ! grep -q 'Err' "$WORK/meta"; then
        pass metadata
    else
        fail metadata "expected $PARTITIONS partitions and a broker: $(tr '\n' ' ' <"$WORK/meta")"
    fi
else
    fail metadata "kcat -L: $(tr '\n' ' ' <"$WORK/meta.err")"
fi

# --- produce: keyed lines, snappy, acks=all ----------------------------------------------
for ((i = 0; i < N; i++)); do
    echo "key-$((i % KEYS)):value-$i"
done >"$WORK/in"
# Two runs a little apart, so the partitions hold two distinct timestamps (librdkafka
# stamps CreateTime itself) and offsetForTimestamp below has a non-trivial answer.
head -n $((N / 2)) "$WORK/in" >"$WORK/in1"
tail -n +$((N / 2 + 1)) "$WORK/in" >"$WORK/in2"
produce() { kc -P -t "$TOPIC" -K: -z snappy -X acks=all -X linger.ms=20 <"$1" 2>>"$WORK/prod.err"; }
if produce "$WORK/in1" && sleep 0.05 && produce "$WORK/in2" &&
    ! grep -q -i 'error' "$WORK/prod.err"; then
    pass produceSnappy
else
    fail produceSnappy "$(tr '\n' ' ' <"$WORK/prod.err")"
fi

# --- consume everything back --------------------------------------------------------------
# Tab-separated: partition, offset, key, value, timestamp.
if kc -C -t "$TOPIC" -o beginning -e -q -f '%p\t%o\t%k\t%s\t%T\n' >"$WORK/out" 2>"$WORK/cons.err"; then
    # Checks: count; value i belongs to key i%KEYS; a key stays in one partition;
    # offsets dense from 0 per partition; value index increasing per partition.
    if verdict=$(awk -F'\t' -v n="$N" -v keys="$KEYS" '
        {
            count++
            p = $1; o = $2; k = $3; v = $4
            split(v, a, "-"); idx = a[2] + 0
            if (k != "key-" (idx % keys)) { print "record " v " has key " k; exit 1 }
            if ((k in part) && part[k] != p) { print k " in partitions " part[k] " and " p; exit 1 }
            part[k] = p
            if (o != next_off[p] + 0) { print "p" p ": offset " o ", expected " next_off[p] + 0; exit 1 }
            next_off[p] = o + 1
            if ((p in last) && idx <= last[p]) { print "p" p ": value " idx " after " last[p]; exit 1 }
            last[p] = idx
            seen[idx] = 1
        }
        END {
            if (count != n) { print "consumed " count " of " n; exit 1 }
            for (i = 0; i < n; i++) if (!(i in seen)) { print "value-" i " missing"; exit 1 }
            used = 0; for (p in last) used++
            if (used < 2) { print "all keys in one partition"; exit 1 }
        }' "$WORK/out"); then
        pass consumeAll
    else
        fail consumeAll "$verdict"
    fi
else
    fail consumeAll "kcat -C: $(tr '\n' ' ' <"$WORK/cons.err")"
fi

# --- offsets: -Q with timestamp -1 (latest) / -2 (earliest) goes through ListOffsets ------
query_args=()
for ((p = 0; p < PARTITIONS; p++)); do
    query_args+=(-t "$TOPIC:$p:-1")
done
if kc -Q "${query_args[@]}" >"$WORK/q" 2>"$WORK/q.err"; then
    # Lines look like: "TOPIC [P] offset N"
    ok=1 msg=""
    for ((p = 0; p < PARTITIONS; p++)); do
        want=$(awk -F'\t' -v p="$p" '$1 == p' "$WORK/out" | wc -l)
        got=$(awk -v p="[$p]" '$2 == p && $3 == "offset" { print $4 }' "$WORK/q")
        if [[ "$got" != "$want" ]]; then
            ok=0 msg+="p$p end offset '$got', expected $want; "
        fi
    done
    if ((ok)); then pass endOffsets; else fail endOffsets "$msg $(tr '\n' ' ' <"$WORK/q")"; fi
else
    fail endOffsets "kcat -Q: $(tr '\n' ' ' <"$WORK/q.err")"
fi

# --- offset for a timestamp: the first record with timestamp >= T -----------------------
p=$(cut -f1 "$WORK/out" | sort | uniq -c | sort -rn | awk 'NR == 1 { print $2 }')
if [[ -n "$p" ]]; then
    # T = timestamp of the partition's last record (second produce run); the expected
    # offset is computed from what we consumed, as several records share a millisecond.
    read -r ts want < <(awk -F'\t' -v p="$p" 'BEGIN { n = 0 } $1 == p { o[n] = $2; t[n] = $5; n++ }
        END { T = t[n - 1]; for (i = 0; i < n; i++) if (t[i] >= T) { print T, o[i]; exit } }' "$WORK/out")
    if kc -Q -t "$TOPIC:$p:$ts" >"$WORK/qt" 2>"$WORK/qt.err"; then
        got=$(awk -v p="[$p]" '$2 == p && $3 == "offset" { print $4 }' "$WORK/qt")
        if [[ "$got" == "$want" ]]; then
            pass offsetForTimestamp
        else
            fail offsetForTimestamp "p$p ts $ts: offset '$got', expected $want"
        fi
    else
        fail offsetForTimestamp "kcat -Q: $(tr '\n' ' ' <"$WORK/qt.err")"
    fi
else
    fail offsetForTimestamp "no records consumed"
fi

# --- consume from an offset inside a (compressed) batch, and relative to the end --------
if [[ -n "$p" ]]; then
    if kc -C -t "$TOPIC" -p "$p" -o 5 -c 1 -e -q -f '%o %s\n' >"$WORK/mid" 2>"$WORK/mid.err"; then
        want=$(awk -F'\t' -v p="$p" '$1 == p && $2 == 5 { print $2, $4 }' "$WORK/out")
        if [[ "$(cat "$WORK/mid")" == "$want" ]]; then pass consumeFromOffset; else
            fail consumeFromOffset "got '$(cat "$WORK/mid")', expected '$want'"
        fi
    else
        fail consumeFromOffset "$(tr '\n' ' ' <"$WORK/mid.err")"
    fi
    # -o -2: two records before the end (kcat resolves the end with ListOffsets).
    if kc -C -t "$TOPIC" -p "$p" -o -2 -e -q -f '%o %s\n' >"$WORK/tail" 2>"$WORK/tail.err"; then
        want=$(awk -F'\t' -v p="$p" '$1 == p { print $2, $4 }' "$WORK/out" | tail -2)
        if [[ "$(cat "$WORK/tail")" == "$want" ]]; then pass consumeFromEnd; else
            fail consumeFromEnd "got '$(tr '\n' ' ' <"$WORK/tail")', expected '$(echo "$want" | tr '\n' ' ')'"
        fi
    else
        fail consumeFromEnd "$(tr '\n' ' ' <"$WORK/tail.err")"
    fi
fi

# --- consumer group: kcat -G consumes everything, commits, a second run resumes ----------
# librdkafka auto-commits (enable.auto.commit, and a final commit on close). No -o: in
# -G mode kcat would apply it to every assigned partition and ignore the committed
# offsets; auto.offset.reset only applies where the group has no committed offset.
GROUP="$TOPIC-group"
kg() { kc -G "$GROUP" -X auto.offset.reset=earliest -X heartbeat.interval.ms=1000 -e -q -f '%p\t%o\t%s\n' "$TOPIC"; }
if kg >"$WORK/g1" 2>"$WORK/g1.err"; then
    # The same records as the plain consumer read, each once.
    if [[ "$(sort "$WORK/g1")" == "$(cut -f1,2,4 "$WORK/out" | sort)" ]]; then
        pass groupConsumeAll
    else
        fail groupConsumeAll "got $(wc -l <"$WORK/g1") records, expected $N; first: $(head -3 "$WORK/g1" | tr '\n\t' '  ')"
    fi
else
    fail groupConsumeAll "kcat -G: $(tr '\n' ' ' <"$WORK/g1.err")"
fi

M=20
for ((i = N; i < N + M; i++)); do echo "key-$((i % KEYS)):value-$i"; done >"$WORK/in3"
if produce "$WORK/in3" && kg >"$WORK/g2" 2>"$WORK/g2.err"; then
    # Only the M new records: the group resumed from the offsets the first run committed.
    got=$(cut -f3 "$WORK/g2" | sort -t- -k2n | tr '\n' ' ')
    want=$(cut -d: -f2 "$WORK/in3" | tr '\n' ' ')
    if [[ "$got" == "$want" ]]; then
        pass groupResumeFromCommitted
    else
        fail groupResumeFromCommitted "second run got $(wc -l <"$WORK/g2") records (expected the $M new ones): $(head -c 300 <<<"$got")"
    fi
else
    fail groupResumeFromCommitted "$(tr '\n' ' ' <"$WORK/prod.err" "$WORK/g2.err" 2>/dev/null)"
fi

exit "$failed"
