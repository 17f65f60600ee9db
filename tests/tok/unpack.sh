#!/bin/sh
# Unpacks the stored tokenizer files into Hugging Face-style directories for the C tests:
#   tests/tok/unpack.sh OUTDIR   ->  OUTDIR/NAME/tokenizer.json (+ tokenizer_config.json where stored)
# for NAME in gpt2 llama3 llama3_instruct mistral qwen3, and checks every file against data/SHA256SUMS.
# Needs only gzip and sha256sum (coreutils); no npm, no network.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: unpack.sh OUTDIR}
mkdir -p "$out"
for d in "$here"/data/*/; do
    name=$(basename "$d")
    mkdir -p "$out/$name"
    gzip -dc "$d/tokenizer.json.gz" > "$out/$name/tokenizer.json"
    if [ -f "$d/tokenizer_config.json" ]; then cp "$d/tokenizer_config.json" "$out/$name/"; fi
done
(cd "$out" && sha256sum --quiet -c "$here/data/SHA256SUMS")
