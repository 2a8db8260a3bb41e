#!/bin/sh
# tests/check_paths.sh — the repository stands on its own: no tracked text file may point outside it.
#
# Fails (exit 1, one "file:line: text" per hit) when a tracked file (git ls-files; without git, every file
# outside build/ and .git/) refers to
#   - the shared/ folder next to the repository (as a relative path, or as a Python os.path.join of its parts), or
#   - an absolute path inside a workspace or home directory: /work, /home, /root or /Users followed by a slash.
#   - the specification files kept outside the repository, by file name or as a citation of their sections;
#     source comments cite docs/architecture.md, docs/encoding.md and docs/v41.md instead.
# System paths (/tmp, /usr, /dev, /proc, /etc, /mnt, /srv, ...) are allowed — they appear as example text in
# test corpora — and so are URLs (a path preceded by a host name does not count). Binary files are skipped.
# The patterns are assembled from pieces so that this file does not match itself.
# Usage: tests/check_paths.sh [ROOT] (default: the current directory). Prints "ok" or the hits.
# tests/run.sh runs it, and runs it once more on a scratch tree with planted references to show it can fail.
set -u
root=${1:-.}
cd "$root" || { echo "check_paths: cannot enter $root"; exit 2; }

dots='\.\.'
sh='shar''ed'
dirs='wo''rk|ho''me|ro''ot|Us''ers'
sp='spe''c'
specs='v4-archi''tecture|v4-enco''ding|v41-engram-''vision|engine-''design'
re="($specs)\\.md|$sp v4[01]?-|$sp §|$dots/$sh([/\"'\`]|\$)|\"$dots\"[[:space:]]*,[[:space:]]*\"$sh\"|(^|[^[:alnum:]_.~-])/($dirs)/"

list=$(mktemp /tmp/dsv4-paths.XXXXXX) || exit 2
trap 'rm -f "$list"' EXIT
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z > "$list"
else
    find . -path ./build -prune -o -path ./.git -prune -o -type f -print0 > "$list"
fi
# grep -I skips binary files; -s ignores tracked files missing from the work tree
hits=$(xargs -0 grep -HIsnE -- "$re" < "$list" | cut -c1-300)
if [ -n "$hits" ]; then
    printf '%s\n' "$hits"
    echo "check_paths: $(printf '%s\n' "$hits" | wc -l) reference(s) to paths outside the repository or to the spec files"
    exit 1
fi
echo "ok"
