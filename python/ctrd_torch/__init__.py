"""ctrd_torch: PyTorch reference modules for the models ctrd serves, and
their export to ctrd's `.ctrm` model file.

    modules   reference modules: mlp, dot (DLRM), dcnv2 (DCN-V2), wukong
    features  raw feature values -> model inputs, exactly as ctrd builds them
    config    the architecture config (JSON) that goes with a state_dict
    ctrm      the .ctrm writer (and a reader) in pure Python/numpy
    export    state_dict + config -> .ctrm (reference or TorchRec names)
    xxh3      the XXH3-64 hash ctrd's `hash` mapping uses

Command line (run with Debian's /usr/bin/python3, which sees python3-torch;
PYTHONPATH=python from the repository root):

    python3 -m ctrd_torch random --arch wukong --config C.json --state S.pt
    python3 -m ctrd_torch.export --config C.json --state S.pt --out M.ctrm
    python3 -m ctrd_torch score --config C.json --state S.pt --examples E.jsonl

docs/IMPORT.md is the manual.
"""

__version__ = "1.0"
