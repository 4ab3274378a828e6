#!/bin/sh
# Rebuild model/data/tiny-spm.model, the small SentencePiece unigram model
# the tiny umT5 preset uses by default, from the prompt-like text shipped in
# model/data/tiny-spm-corpus.txt.  T5 id layout: pad 0, EOS 1, unk 2, no BOS.
# Byte fallback keeps characters outside the corpus (emoji, rare CJK) as
# byte pieces instead of <unk>.  One thread: the result is reproducible.
#
# Usage: tools/train-tiny-spm.sh [--help]   (needs spm_train, Debian package
# `sentencepiece`)
set -eu
case "${1:-}" in
  -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
cd "$(dirname "$0")/.."
# relative paths: the trainer spec stored in the model records them
spm_train --input=model/data/tiny-spm-corpus.txt --model_prefix=model/data/tiny-spm \
  --model_type=unigram --vocab_size=640 --character_coverage=1.0 \
  --byte_fallback=true --pad_id=0 --eos_id=1 --unk_id=2 --bos_id=-1 \
  --normalization_rule_name=nmt_nfkc --num_threads=1 --seed_sentencepiece_size=100000 \
  --minloglevel=1
rm -f model/data/tiny-spm.vocab
echo "wrote model/data/tiny-spm.model"
