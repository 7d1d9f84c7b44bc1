"""python3 -m ctrd_torch random|export|score (docs/IMPORT.md).

  random  a random reference model: writes its config and its state_dict
          (--arch A gives a Criteo-shaped model: dense I1..I13 log1p,
          categorical C1..C26 hashed into 1000 buckets each, d = 16; or
          --template T.json any config with every width given)
  export  state_dict + config -> .ctrm (the same as -m ctrd_torch.export)
  score   the reference modules' probabilities for examples (JSON lines,
          one {feature: value} object per line, as in /v1/score), one
          %.9g per line: what ctrd should answer, to 1e-5; the model from
          --config and --state, or from a .ctrm file (--model)
"""

import argparse
import json
import sys

from . import config as C
from . import export as E


def preset(arch):
    """A Criteo-shaped config of arch (13 dense, 26 hashed categorical, d = 16)."""
    cfg = {"name": "torch-" + arch, "arch": arch, "activation": "relu", "beta": 1.0,
           "dense": [{"name": "I%d" % i, "transform": "log1p"} for i in range(1, 14)],
           "categorical": [{"name": "C%d" % j, "buckets": 1000, "dim": 16, "mapping": "hash",
                            "seed": str(j)} for j in range(1, 27)],
           "top": [64, 32]}
    if arch != "mlp":
        cfg["bottom"] = [64, 16]
    if arch == "dot":
        cfg["interaction"] = {"order": "lower", "self": False}
    elif arch == "dcnv2":
        cfg["interaction"] = {"structure": "stacked", "layers": 3, "rank": 16}
    elif arch == "wukong":
        cfg["interaction"] = {"ln_eps": 1e-5, "fmb_ln": "flat", "fmb_out_act": False,
                              "layers": [{"n_f": 8, "n_l": 8, "k": 8, "fmb": [64]},
                                         {"n_f": 8, "n_l": 8, "k": 8, "fmb": [64]}]}
    return cfg


def random_model(cfg, seed, names="reference"):
    """(normalized config, state_dict of tensors) of a random reference model."""
    from .modules import CTRModel, init_random
    cfg = C.normalize(cfg)
    model = init_random(CTRModel(cfg), seed)
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if names == "torchrec":
        sd = E.torchrec_state(sd, cfg)
    return cfg, sd, model


def cmd_random(args):
    import torch
    if args.template:
        raw = json.load(open(args.template))
    elif args.arch:
        raw = preset(args.arch)
    else:
        print("random: --arch or --template is needed", file=sys.stderr)
        return 2
    cfg, sd, _ = random_model(raw, args.seed, args.names)
    with open(args.config, "w") as f:
        json.dump(C.to_json(cfg), f, indent=1)
        f.write("\n")
    torch.save(sd, args.state)
    print("wrote %s and %s: %s, %d parameters, %s names"
          % (args.config, args.state, cfg["arch"], sum(v.numel() for v in sd.values()), args.names))
    return 0


def load_model(config_path, state_path):
    """A reference module with the weights of a state_dict (reference or
    TorchRec names: whatever the exporter reads)."""
    import torch
    from .modules import CTRModel
    cfg = C.load(config_path)
    desc = E.to_desc(cfg, E.load_state(state_path))  # checks names and shapes
    for f, e in zip(cfg["categorical"], desc["categorical"]):
        f["buckets"], f["dim"] = e["buckets"], e["dim"]
    model = CTRModel(cfg)
    sd = E.reference_state(desc, cfg)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    return cfg, model


def load_ctrm(path):
    """The reference module of a .ctrm file (any writer's)."""
    import torch
    from . import ctrm
    from .modules import CTRModel
    hdr, tensors, _ = ctrm.read(path)
    desc = ctrm.desc_of(hdr, tensors)
    cfg = E.config_of(desc)
    model = CTRModel(cfg)
    sd = E.reference_state(desc, cfg)
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in sd.items()})
    return cfg, model


def cmd_score(args):
    from .features import encode
    if args.model:
        cfg, model = load_ctrm(args.model)
    elif args.config and args.state:
        cfg, model = load_model(args.config, args.state)
    else:
        print("score: --config and --state, or --model", file=sys.stderr)
        return 2
    src = open(args.examples) if args.examples != "-" else sys.stdin
    examples = [json.loads(line) for line in src if line.strip()]
    out = []
    for s in range(0, len(examples), 4096):
        dense, rows = encode(cfg, examples[s:s + 4096])
        out.extend(float(p) for p in model.predict(dense, rows))
    sys.stdout.write("".join("%.9g\n" % p for p in out))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m ctrd_torch")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("random", help="a random reference model: config + state_dict")
    r.add_argument("--arch", choices=C.ARCHS, help="a Criteo-shaped model of this architecture")
    r.add_argument("--template", help="a config with every width, instead of --arch")
    r.add_argument("--config", required=True, help="config to write (JSON)")
    r.add_argument("--state", required=True, help="state_dict to write (torch.save)")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--names", choices=("reference", "torchrec"), default="reference",
                   help="parameter names: the reference modules' or TorchRec's (dot, dcnv2)")
    e = sub.add_parser("export", help="state_dict + config -> .ctrm")
    e.add_argument("--config", required=True)
    e.add_argument("--state", required=True)
    e.add_argument("--out", required=True)
    s = sub.add_parser("score", help="the reference modules' probabilities for JSON-lines examples")
    s.add_argument("--config")
    s.add_argument("--state")
    s.add_argument("--model", help="a .ctrm file instead of --config and --state")
    s.add_argument("--examples", required=True, help="JSON lines file, or - for stdin")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "random":
            return cmd_random(args)
        if args.cmd == "export":
            return E.main(["--config", args.config, "--state", args.state, "--out", args.out])
        return cmd_score(args)
    except (C.ConfigError, E.ExportError, ValueError, OSError) as ex:
        print("ctrd_torch %s: %s" % (args.cmd, ex), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
