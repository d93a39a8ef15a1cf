#!/usr/bin/env bash
# Build the Java compat client into target/classes + target/lib (its runtime jars).
# Skips the build when nothing changed. Tries offline first (deps already in ~/.m2),
# then online, so it is fast after scripts/install-deps.sh and still works without it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

stamp=target/.built
if [[ -f $stamp && -d target/lib ]] &&
    [[ -z "$(find pom.xml src -newer "$stamp" -print -quit)" ]]; then
    exit 0
fi
goals=(-q -B -Dstyle.color=never compile dependency:copy-dependencies -DoutputDirectory=target/lib -DincludeScope=runtime)
mvn -o "${goals[@]}" >/dev/null 2>&1 || mvn "${goals[@]}"
touch "$stamp"
