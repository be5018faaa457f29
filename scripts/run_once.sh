# Sourced by the experiments' run.sh scripts: run NAME CONFIG FLAGS... trains one workdir
# $OUT/NAME with rnnlm-train (flags $COMMON, then FLAGS), its log in $OUT/NAME.log, and skips a
# workdir that already finished (an interrupted one resumes).
run() {
  local name=$1 config=$2; shift 2
  if grep -qs '"finished"' "$OUT/$name/status.json"; then echo "skip $name"; return; fi
  echo "== $name"
  rnnlm-train --config "$config" --workdir "$OUT/$name" $COMMON "$@" > "$OUT/$name.log" 2>&1
  tail -n 2 "$OUT/$name.log"
}
