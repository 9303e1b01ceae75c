#!/usr/bin/env python3
"""The static floor in numpy, independent of the Rust evaluator: each text's embedding is the
mean of all-MiniLM-L6-v2's input token embeddings (`embeddings.word_embeddings.weight`, read
from model.safetensors by hand) over its tokens ([CLS] and [SEP] included, 128-token
truncation), L2-normalised; Lee-50 Pearson, WordSim-353 Spearman (average ranks) and BBC
nearest centroid (needs data/bbc-{train,test}.parquet from `distill-label import-bbc`).
Printed 2026-12-02: lee 0.389877, wordsim 0.553701, bbc centroid 0.906250 (the values
student-trainer/tests/text_eval.rs checks eval-text's static floor against).
Run from the repository root: .venv/bin/python scripts/golden/text_eval_floor.py
"""
import json, struct, numpy as np, pyarrow.parquet as pq
from tokenizers import Tokenizer
f=open('.deps/models/minilm-l6/model.safetensors','rb'); n=struct.unpack('<Q',f.read(8))[0]; h=json.loads(f.read(n)); base=8+n
m=h['embeddings.word_embeddings.weight']; a,b=m['data_offsets']; f.seek(base+a)
table=np.frombuffer(f.read(b-a),dtype=np.float32).reshape(m['shape']).astype(np.float64)
tok=Tokenizer.from_file('.deps/models/minilm-l6/tokenizer.json'); tok.no_padding(); tok.enable_truncation(128)
def emb(texts):
    e=np.stack([table[tok.encode(t).ids].mean(0) for t in texts]); return e/np.linalg.norm(e,axis=1,keepdims=True)
docs=[l.strip() for l in open('.deps/corpora/eval/lee.cor',encoding='latin-1') if l.strip()]
S=np.loadtxt('.deps/corpora/eval/similarities0-1.txt'); iu=np.triu_indices(50,1)
E=emb(docs); print('lee',np.corrcoef((E@E.T)[iu],S[iu])[0,1])
rows=[l.rstrip('\n').split('\t') for l in open('.deps/corpora/eval/wordsim353.tsv') if not l.startswith('#')]
def rk(x): 
    o=np.argsort(x,kind='stable'); r=np.empty(len(x)); xs=np.asarray(x)[o]; i=0
    while i<len(x):
        j=i
        while j+1<len(x) and xs[j+1]==xs[i]: j+=1
        r[o[i:j+1]]=(i+j)/2+1; i=j+1
    return r
c=[float(emb([a])[0]@emb([b])[0]) for a,b,_ in rows]; hs=[float(s) for *_,s in rows]
print('wordsim',np.corrcoef(rk(c),rk(hs))[0,1])
tr=pq.read_table('data/bbc-train.parquet').to_pydict(); te=pq.read_table('data/bbc-test.parquet').to_pydict()
cl=sorted(set(tr['label'])); Xtr=emb(tr['text']); Xte=emb(te['text'])
C=np.stack([Xtr[np.array(tr['label'])==k].mean(0) for k in cl]); C/=np.linalg.norm(C,axis=1,keepdims=True)
pred=np.argmax(Xte@C.T,1); print('bbc centroid',np.mean(np.array(cl)[pred]==np.array(te['label'])))
