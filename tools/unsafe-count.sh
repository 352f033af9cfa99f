#!/bin/sh
# Count `unsafe` in the kernel binary's source, per directory of kernel/src.
#
#   tools/unsafe-count.sh [SRC_DIR]      (default: kernel/src)
#
# Comments are stripped first (everything from `//` to the end of a line), so
# a `// SAFETY:` note or a doc comment that mentions unsafe is not counted.
# Columns: `unsafe {` blocks, `unsafe fn` / `unsafe extern .. fn`
# declarations, `unsafe impl`s, `#[unsafe(..)]` attributes, and their total.
# A file directly under SRC_DIR is counted under its own name.
set -eu
src=${1:-kernel/src}
cd "$src"
find . -name '*.rs' | sort | while read -r f; do
    f=${f#./}
    case "$f" in
        */*) dir=${f%%/*} ;;
        *) dir=$f ;;
    esac
    sed 's#//.*##' "$f" | awk -v dir="$dir" '
        { line = $0
          b += gsub(/unsafe[ \t]*\{/, "", line)
          line = $0
          n += gsub(/unsafe[ \t]+(extern[ \t]+"[^"]*"[ \t]+)?fn[ \t]/, "", line)
          line = $0
          i += gsub(/unsafe[ \t]+impl[ \t<]/, "", line)
          line = $0
          a += gsub(/#\[unsafe\(/, "", line) }
        END { printf "%s %d %d %d %d\n", dir, b, n, i, a }'
done | awk '
    { b[$1] += $2; n[$1] += $3; i[$1] += $4; a[$1] += $5; if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 } }
    END {
        printf "%-16s %6s %6s %6s %6s %6s\n", "directory", "blocks", "fns", "impls", "attrs", "total"
        for (j = 1; j <= k; j++) {
            d = order[j]; t = b[d] + n[d] + i[d] + a[d]
            printf "%-16s %6d %6d %6d %6d %6d\n", d, b[d], n[d], i[d], a[d], t
            tb += b[d]; tn += n[d]; ti += i[d]; ta += a[d]
        }
        printf "%-16s %6d %6d %6d %6d %6d\n", "all", tb, tn, ti, ta, tb + tn + ti + ta
    }'
