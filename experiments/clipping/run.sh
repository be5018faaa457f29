#!/usr/bin/env bash
# The clipping atlas of one corpus in one command (issue 21): every cell's halving search (and,
# on PTB words, the tanh RNN's low-rate supplement), then the records archived into the
# checkout, the figures drawn and the results tables printed. Re-running resumes where it
# stopped. From the repository root:
#
#   bash experiments/clipping/run.sh ptb_word            # or shakespeare_char
#   RUNS=~/rnnlm_runs/atlas bash experiments/clipping/run.sh shakespeare_char
#
# Runs live in $RUNS/<corpus>/cell=<cell> (default ~/rnnlm_runs/atlas, outside the checkout);
# records go to experiments/clipping/records/<corpus>/, figures to
# experiments/clipping/figures/<corpus>/.
set -euo pipefail
corpus=${1:?usage: bash experiments/clipping/run.sh ptb_word|shakespeare_char}
case $corpus in
  ptb_word) min_budget=258 ;;  # 1/9 epoch: the first rung (ptb_word.py)
  shakespeare_char) min_budget=104 ;;  # 1/3 epoch (shakespeare_char.py)
  *) echo "error: unknown corpus '$corpus'; one of ptb_word, shakespeare_char" >&2; exit 2 ;;
esac
RUNS=${RUNS:-$HOME/rnnlm_runs/atlas}
here=experiments/clipping
for cell in rnn_tanh lstm gru; do
  rnnlm-sweep --config $here/$corpus.py --config.model.cell=$cell \
      --workdir "$RUNS/$corpus/cell=$cell" --search=halving --eta 3 --min_budget $min_budget
done
if [ "$corpus" = ptb_word ]; then  # the tanh RNN's unclipped reference (see the README)
  rnnlm-sweep --config $here/ptb_word_low_lr.py --config.model.cell=rnn_tanh \
      --workdir "$RUNS/$corpus/cell=rnn_tanh_low_lr"
fi
for d in "$RUNS/$corpus"/cell=*; do
  python scripts/archive_runs.py "$d" "$here/records/$corpus/$(basename "$d")" > /dev/null
done
rnnlm-report "$here/records/$corpus" --atlas --out "$here/figures/$corpus"
python scripts/tables.py clipping
