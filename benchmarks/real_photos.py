"""Real-photo M-CLIP (issue 12): the pretrained EfficientNet-Lite0 and all-MiniLM-L6-v2 on Flickr8k, against
a linear probe of the same frozen features, run in the same script.

    .venv/bin/python benchmarks/real_photos.py                           # every row
    .venv/bin/python benchmarks/real_photos.py --rows linear_probe,frozen --max_steps 300

Training: flickr8k-more + flickr8k-multi30k train (4,797 photos, English captions); evaluation:
flickr8k-multi30k val + test (203 photos, 1,015 English captions), t2i / i2t R@K per language.
Rows:
- `linear_probe`: both towers frozen, features encoded once (EfficientNet pooled 1280-d, MiniLM mean-pooled
  384-d); only two linear projections train (InfoNCE, batch 256, learnable temperature). Plain torch, no mmml
  training code: the baseline.
- `frozen`, `partial`, `full`: the shared recipe with recipes/configs/real_photos.yaml; `frozen` freezes both
  towers (the recipe's version of the probe), `partial` (the config as shipped) trains MiniLM's top three
  layers next to the frozen, cached image tower, `full` trains both towers.
- `acquirer_de` (or `_fr`, `_cs`): an MLA acquirer (own tokenizer and embeddings, LoRA) taught German on
  general-domain news + Multi30K parallel text (recipes/add_language.py) with the `frozen` row's M-CLIP as
  its frozen base, so German captions land where that model puts their English translation; evaluated on
  the same photos in German next to English, plus Tatoeba / Multi30K bitext accuracy.
Results go to OUTPUT_ROOT/results.json; the table printed at the end is what BENCHMARKS.md holds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from make_flickr_init import minilm_path  # benchmarks/ is on sys.path when this script runs

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MMML_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
CONFIG = REPO_ROOT / "recipes" / "configs" / "real_photos.yaml"
TEXT_LAYERS = [f"text_model.encoder.layer.{i}" for i in range(6)]
RECIPE_ROWS = {
    "frozen": ["--frozen_modules", "vision_model,text_model"],
    "partial": [],  # the config as shipped
    "full": ["--frozen_modules", "[]", "--lr_multipliers", "{vision_model: 0.05, text_model: 0.05}"],
}
LANGUAGES = ("en", "de", "fr", "cs")
ACQUIRER_DATA = f"{SHARED / 'news-parallel'}=0.7,{SHARED / 'multi30k'}=0.3"


def read_rows(paths: list[Path]) -> list[dict]:
    rows = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            rows.append({"image": str(path.parent / row["image"]), "captions": row["captions"]})
    return rows


def encode_photos(tower_dir: Path, images: list[str], batch_size: int = 64) -> torch.Tensor:
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModel

    import mmml  # noqa: F401

    tower = AutoModel.from_pretrained(tower_dir).eval()
    processor = AutoImageProcessor.from_pretrained(tower_dir)
    features = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            chunk = [Image.open(path).convert("RGB") for path in images[start:start + batch_size]]
            features.append(tower(pixel_values=processor(images=chunk, return_tensors="pt")["pixel_values"]).pooler_output)
    return torch.cat(features)


def caption_encoder():
    """all-MiniLM-L6-v2 mean-pooled (unnormalised), as the probe's frozen text features."""
    from transformers import AutoModel, AutoTokenizer

    from mmml.modeling.text_encoder import TextEncoder
    from mmml.training.text_distillation import embed_texts, make_tokenize

    encoder = TextEncoder(AutoModel.from_pretrained(minilm_path()), pooling="mean")
    tokenize = make_tokenize(AutoTokenizer.from_pretrained(minilm_path()), 64)
    return lambda texts: embed_texts(encoder, tokenize, texts)


def probe_features(root: Path, tower_dir: Path) -> dict:
    """Frozen features of every training photo and English caption and of the evaluation set, cached on disk."""
    path = root / "probe_features.pt"
    if path.is_file():
        return torch.load(path, weights_only=True)
    train = read_rows([SHARED / "flickr8k-more" / "train.jsonl", SHARED / "flickr8k-multi30k" / "train.jsonl"])
    evaluation = read_rows([SHARED / "flickr8k-multi30k" / "val.jsonl", SHARED / "flickr8k-multi30k" / "test.jsonl"])
    start = time.perf_counter()
    captions = [(i, text) for i, row in enumerate(train) for text in row["captions"].get("en", [])]
    encode_captions = caption_encoder()
    features = {
        "train_images": encode_photos(tower_dir, [row["image"] for row in train]),
        "train_texts": encode_captions([text for _, text in captions]),
        "train_text_image": torch.tensor([i for i, _ in captions]),
        "eval_images": encode_photos(tower_dir, [row["image"] for row in evaluation]),
    }
    for language in LANGUAGES:
        pairs = [(i, text) for i, row in enumerate(evaluation) for text in row["captions"].get(language, [])]
        features[f"eval_texts_{language}"] = encode_captions([text for _, text in pairs])
        features[f"eval_text_image_{language}"] = torch.tensor([i for i, _ in pairs])
    features["encode_s"] = torch.tensor(time.perf_counter() - start)
    torch.save(features, path)
    return features


def linear_probe(features: dict, steps: int, batch_size: int = 256, dim: int = 256, seed: int = 0) -> dict:
    """Two linear projections on frozen features, symmetric InfoNCE, one random caption per photo per batch."""
    from mmml.eval.retrieval import retrieval_metrics_from_embeddings

    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    image_proj = torch.nn.Linear(features["train_images"].shape[1], dim, bias=False)
    text_proj = torch.nn.Linear(features["train_texts"].shape[1], dim, bias=False)
    log_scale = torch.nn.Parameter(torch.tensor(2.6592))
    params = [*image_proj.parameters(), *text_proj.parameters(), log_scale]
    optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    captions_of = {}
    for text, image in enumerate(features["train_text_image"].tolist()):
        captions_of.setdefault(image, []).append(text)
    images_with_text = torch.tensor(sorted(captions_of))
    start = time.perf_counter()
    for _ in range(steps):
        images = images_with_text[torch.randperm(len(images_with_text), generator=generator)[:batch_size]]
        texts = torch.tensor([captions_of[i][torch.randint(len(captions_of[i]), (1,), generator=generator).item()]
                              for i in images.tolist()])
        x = F.normalize(image_proj(features["train_images"][images]), dim=-1)
        y = F.normalize(text_proj(features["train_texts"][texts]), dim=-1)
        logits = log_scale.exp().clamp(max=100) * x @ y.T
        target = torch.arange(len(images))
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    train_s = time.perf_counter() - start
    result = {"train_s": round(train_s, 1), "steps": steps, "test": {}}
    with torch.no_grad():
        images = F.normalize(image_proj(features["eval_images"]), dim=-1)
        for language in LANGUAGES:
            texts = F.normalize(text_proj(features[f"eval_texts_{language}"]), dim=-1)
            result["test"][language] = retrieval_metrics_from_embeddings(
                images, texts, features[f"eval_text_image_{language}"].tolist())
    return result


def run_recipe_row(name: str, root: Path, tower_dir: Path, extra: list[str]) -> dict:
    output_dir = root / name
    if not (output_dir / "metrics.json").is_file():
        data = {"train": [str(SHARED / "flickr8k-more" / "train.jsonl"), str(SHARED / "flickr8k-multi30k" / "train.jsonl")],
                "validation": [str(SHARED / "flickr8k-multi30k" / "val.jsonl")],
                "test": [str(SHARED / "flickr8k-multi30k" / "val.jsonl"), str(SHARED / "flickr8k-multi30k" / "test.jsonl")]}
        command = [str(Path(sys.executable).parent / "accelerate"), "launch", "--num_cpu_threads_per_process",
                   str(os.cpu_count()), str(REPO_ROOT / "recipes" / "pretrain.py"), "--config", str(CONFIG),
                   "--output_dir", str(output_dir), "--data", json.dumps(data), "--languages", ",".join(LANGUAGES[:1]),
                   "--vision_model_name_or_path", str(tower_dir), "--text_model_name_or_path", str(minilm_path()),
                   *RECIPE_ROWS[name], *extra]
        print("$", " ".join(command), flush=True)
        start = time.perf_counter()
        subprocess.run(command, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    metrics = json.loads((output_dir / "metrics.json").read_text())
    return {"train_s": metrics["train_time_s"], "steps": metrics["args"]["max_steps"], "test": metrics["test"],
            "frozen_tower_cache": metrics.get("frozen_tower_cache")}


def run_acquirer_row(language: str, root: Path, extra: list[str]) -> dict:
    from mmml.data.parallel import tatoeba_files

    base = root / "frozen" / "final"
    if not (base / "config.json").is_file():
        raise SystemExit(f"the acquirer rows start from the frozen row's model: run --rows frozen first ({base})")
    output_dir = root / f"acquirer_{language}"
    if not (output_dir / "metrics.json").is_file():
        eval_sets = [{"name": "tatoeba", "files": {k: str(v) for k, v in tatoeba_files(SHARED / "tatoeba", language).items()}},
                     {"name": "multi30k", "files": {k: str(SHARED / "multi30k" / f"test_2016_flickr.{k}")
                                                    for k in ("en", language)}}]
        command = [str(Path(sys.executable).parent / "accelerate"), "launch", "--num_cpu_threads_per_process",
                   str(os.cpu_count()), str(REPO_ROOT / "recipes" / "add_language.py"), "--model_name_or_path",
                   str(base), "--language", language, "--own_tokenizer", "true", "--parallel_data", ACQUIRER_DATA,
                   "--eval_split", "none", "--eval_sets", json.dumps(eval_sets), "--output_dir", str(output_dir),
                   "--cache_dir", str(root / "cache"), *extra]
        print("$", " ".join(command), flush=True)
        subprocess.run(command, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    metrics = json.loads((output_dir / "metrics.json").read_text())
    sys.path.insert(0, str(REPO_ROOT / "recipes"))
    from add_language import load_base
    from datasets import concatenate_datasets

    from mmml.data import load_manifest
    from mmml.eval import RetrievalEvaluator

    model, processor = load_base(str(base))
    model.load_language(output_dir / "acquirer", processor=processor)
    photos = SHARED / "flickr8k-multi30k"
    dataset = concatenate_datasets([load_manifest(photos / f"{split}.jsonl", languages=["en", language])
                                    for split in ("val", "test")])
    evaluator = RetrievalEvaluator(processor, languages=["en", language], route_by_language=True, batch_size=64)
    return {"train_s": metrics["nlt"]["train_time_s"], "steps": f"{sum(metrics['nlt']['pairs_seen'].values()):,} pairs",
            "pairs_seen": metrics["nlt"]["pairs_seen"], "bitext": metrics["nlt"]["eval"],
            "test": evaluator.evaluate(model, dataset)}


def table(results: dict) -> str:
    lines = ["| row | steps | train s | en t2i R@1 | R@5 | R@10 | en i2t R@1 | x linear probe (t2i R@1) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    base = results.get("linear_probe", {}).get("test", {}).get("en", {}).get("t2i_r1")
    for name, row in results.items():
        en = row["test"]["en"]
        if name.startswith("acquirer_"):
            language = name.removeprefix("acquirer_")
            foreign = row["test"][language]
            lines.append(f"| {name}: {language} captions | {row['steps']} | {row['train_s']} | {foreign['t2i_r1']:.1f} | "
                         f"{foreign['t2i_r5']:.1f} | {foreign['t2i_r10']:.1f} | {foreign['i2t_r1']:.1f} | "
                         f"{foreign['t2i_r1'] / en['t2i_r1']:.2f} of English |")
            continue
        ratio = f"{en['t2i_r1'] / base:.2f}" if base else "-"
        lines.append(f"| {name} | {row['steps']} | {row['train_s']} | {en['t2i_r1']:.1f} | {en['t2i_r5']:.1f} | "
                     f"{en['t2i_r10']:.1f} | {en['i2t_r1']:.1f} | {ratio} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="linear_probe,frozen,partial,full")
    parser.add_argument("--output_root", default=str(REPO_ROOT / "outputs" / "real_photos_bench"))
    parser.add_argument("--probe_steps", type=int, default=3000)
    parser.add_argument("--max_steps", type=int, default=None, help="recipe rows (default: the config's)")
    parser.add_argument("--full_max_steps", type=int, default=None, help="the `full` row (default: --max_steps)")
    parser.add_argument("--acquirer_args", default="--pairs_per_epoch 45000 --epochs 1 --eval_every_steps 350",
                        help="more add_language.py arguments for the acquirer rows")
    options = parser.parse_args()
    if not (SHARED / "flickr8k-more" / "train.jsonl").is_file():
        raise SystemExit(f"{SHARED}/flickr8k-more not found: set MMML_SHARED_DATA to the shared data folder")
    root = Path(options.output_root)
    root.mkdir(parents=True, exist_ok=True)
    tower_dir = root / "efficientnet-lite0"
    if not (tower_dir / "config.json").is_file():
        from mmml.models.efficientnet_lite.convert_efficientnet_lite import convert

        convert("efficientnet-lite0", tower_dir)
    results_path = root / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for name in options.rows.split(","):
        if name == "linear_probe":
            results[name] = linear_probe(probe_features(root, tower_dir), options.probe_steps)
        elif name.startswith("acquirer_"):
            results[name] = run_acquirer_row(name.removeprefix("acquirer_"), root, options.acquirer_args.split())
        else:
            steps = options.full_max_steps if name == "full" and options.full_max_steps else options.max_steps
            results[name] = run_recipe_row(name, root, tower_dir, ["--max_steps", str(steps)] if steps else [])
        results_path.write_text(json.dumps(results, indent=2))
        print(table(results), flush=True)


if __name__ == "__main__":
    main()
