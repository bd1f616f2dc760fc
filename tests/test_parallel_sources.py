"""Several parallel sources at once: the layout resolver, the weighted mixture, pairs seen, the learning curve."""

from __future__ import annotations

import itertools
import json
import random

import numpy as np
import pytest
import torch
from conftest import tiny_mclip_config
from safetensors.torch import load_file
from test_multilingual_recipes import load_recipe

import mmml
from mmml.data.pairs import LengthGroupedBatchSampler
from mmml.data.parallel import (
    ParallelDataError,
    ParallelEvalSet,
    ParallelFilesNotFound,
    ParallelPart,
    ParallelSource,
    SourceMixture,
    load_parallel_parts,
    mixture_counts,
    parse_parallel_sources,
    resolve_parallel_files,
    tatoeba_files,
)
from mmml.training import parse_args
from mmml.training.text_distillation import TextDistillationArguments, _MixtureItems

SIZES = {"small": "klein", "big": "groß"}
COLORS = {"red": "rot", "blue": "blau", "green": "grün", "yellow": "gelb", "black": "schwarz", "white": "weiß"}
SHAPES = {"circle": "Kreis", "square": "Quadrat", "star": "Stern", "cross": "Kreuz", "triangle": "Dreieck"}
PLACES = {"on the left": "links", "on the right": "rechts", "at the top": "oben", "at the bottom": "unten"}


def sentence_pairs() -> list[tuple[str, str]]:
    """240 distinct (English, German) shape descriptions in a fixed shuffled order."""
    pairs = [(f"a {s} {c} {h} {p}", f"ein {SIZES[s]} {COLORS[c]} {SHAPES[h]} {PLACES[p]}")
             for s, c, h, p in itertools.product(SIZES, COLORS, SHAPES, PLACES)]
    random.Random(0).shuffle(pairs)
    return pairs


def write_pairs(folder, split, pairs, languages=("en", "de")):
    folder.mkdir(parents=True, exist_ok=True)
    for side, language in enumerate(languages):
        (folder / f"{split}.{language}").write_text("".join(p[side] + "\n" for p in pairs), encoding="utf-8")


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """`news`: pair folders (en-de/train, en-de/val); `m30k`: flat files (train only); `tatoeba`: ISO 639-3 files."""
    root = tmp_path_factory.mktemp("sources")
    pairs = sentence_pairs()
    write_pairs(root / "news" / "en-de", "train", pairs[:128])
    write_pairs(root / "news" / "en-de", "val", pairs[128:144])
    write_pairs(root / "m30k", "train", pairs[144:208])
    files = tatoeba_files(root / "tatoeba", "de")
    (root / "tatoeba").mkdir()
    for language, path in files.items():
        path.write_text("".join(p[language == "de"] + "\n" for p in pairs[208:224]), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, tiny_processor):
    folder = tmp_path_factory.mktemp("base")
    torch.manual_seed(0)
    mmml.MCLIPModel(tiny_mclip_config()).save_pretrained(folder)
    tiny_processor.save_pretrained(folder)
    return folder


# The resolver ----------------------------------------------------------------------------------------------------


def test_resolver_reads_flat_files_and_pair_folders_in_either_order(tmp_path):
    write_pairs(tmp_path / "flat", "train", [("a", "b")])
    write_pairs(tmp_path / "pairs" / "en-de", "train", [("a", "b")])
    write_pairs(tmp_path / "pairs" / "fr-en", "train", [("c", "d")], languages=("fr", "en"))
    assert resolve_parallel_files(tmp_path / "flat", "train", ["en", "de"]) == {
        "en": tmp_path / "flat" / "train.en", "de": tmp_path / "flat" / "train.de"}
    assert resolve_parallel_files(tmp_path / "pairs", "train", ["en", "de"])["de"] == tmp_path / "pairs/en-de/train.de"
    assert resolve_parallel_files(tmp_path / "pairs", "train", ["en", "fr"])["fr"] == tmp_path / "pairs/fr-en/train.fr"


def test_resolver_error_lists_what_it_looked_for(tmp_path):
    write_pairs(tmp_path / "pairs" / "en-de", "train", [("a", "b")])
    with pytest.raises(ParallelFilesNotFound) as error:
        resolve_parallel_files(tmp_path / "pairs", "test", ["en", "de"])
    message = str(error.value)
    for looked_for in ("pairs/test.en", "pairs/test.de", "pairs/en-de/test.en", "pairs/de-en/test.de"):
        assert looked_for in message, message
    assert "pair folders ['en-de'] (splits ['train'])" in message


def test_a_training_source_without_the_split_is_an_error_naming_it(sources):
    news, m30k = ParallelSource(str(sources / "news")), ParallelSource(str(sources / "m30k"), name="multi")
    parts, missing = load_parallel_parts([news, m30k], "train", "en", ["de"])
    assert [(p.source, p.language, len(p)) for p in parts] == [("news", "de", 128), ("multi", "de", 64)] and not missing
    assert parts[0].translations[0] == sentence_pairs()[0][0] and parts[0].texts[0] == sentence_pairs()[0][1]
    missing_split = r"source 'multi' \(.*m30k\) has no 'val' split for any of \['en-de'\]"
    with pytest.raises(ParallelFilesNotFound, match=missing_split):
        load_parallel_parts([news, m30k], "val", "en", ["de"])
    # Evaluation uses the sources that have the split, and fails only when none has it.
    parts, missing = load_parallel_parts([news, m30k], "val", "en", ["de"], every_source=False)
    assert [p.source for p in parts] == ["news"] and len(missing) == 1 and "'multi'" in missing[0]
    with pytest.raises(ParallelFilesNotFound, match=r"no parallel source has a 'test' split"):
        load_parallel_parts([news, m30k], "test", "en", ["de"], every_source=False)
    with pytest.raises(ParallelFilesNotFound, match=r"no parallel source has a 'train' split for \['en-fr'\]"):
        load_parallel_parts([news, m30k], "train", "en", ["de", "fr"])


# The arguments ---------------------------------------------------------------------------------------------------


def test_sources_from_the_command_line_and_yaml(tmp_path):
    one = parse_args(TextDistillationArguments, ["--parallel_data", "../shared/data/multi30k"])
    assert one.parallel_data == [ParallelSource("../shared/data/multi30k", 1.0, "multi30k")]
    two = parse_args(TextDistillationArguments, ["--parallel_data", "data/news-parallel=0.7,data/multi30k=0.3"])
    assert [(s.name, s.weight) for s in two.parallel_data] == [("news-parallel", 0.7), ("multi30k", 0.3)]
    flow = parse_args(TextDistillationArguments, ["--parallel_data", "[{path: a/x, weight: 3, name: big}, b/x.jsonl]"])
    assert flow.parallel_data == [ParallelSource("a/x", 3.0, "big"), ParallelSource("b/x.jsonl", 1.0, "x")]
    config = tmp_path / "c.yaml"
    config.write_text("parallel_data:\n  - {path: ../shared/data/news-parallel, weight: 0.7}\n"
                      "  - {path: ../shared/data/multi30k, weight: 0.3}\n"
                      "eval_sets:\n  - {name: tatoeba, files: {en: t.eng, de: t.deu}}\n")
    args = parse_args(TextDistillationArguments, ["--config", str(config)])
    assert [s.weight for s in args.parallel_data] == [0.7, 0.3]
    assert args.eval_sets == [ParallelEvalSet(name="tatoeba", files={"en": "t.eng", "de": "t.deu"})]
    with pytest.raises(ParallelDataError, match=r"share the names \['x'\]"):
        parse_parallel_sources(["a/x", "b/x"])
    with pytest.raises(ParallelDataError, match="weight must be a positive number"):
        parse_parallel_sources("a=-1")
    with pytest.raises(ParallelDataError, match=r"unknown keys \['wieght'\]"):
        parse_parallel_sources([{"path": "a", "wieght": 2}])


# The mixture -----------------------------------------------------------------------------------------------------


def test_mixture_counts_follow_the_weights():
    assert mixture_counts([3, 1], 200) == [150, 50]
    assert mixture_counts([0.7, 0.3], 75_000) == [52_500, 22_500]
    assert mixture_counts([1, 1, 1], 10) == [4, 3, 3]  # largest remainder, earlier source first on ties


def test_mixture_share_over_an_epoch_with_length_grouped_batches():
    """Weights 3:1 give source 0 exactly 75% of an epoch; the batches the sampler keeps (it drops the
    last `epoch_size % batch_size` items) hold 75% +- that many items."""
    sizes, lengths = [50, 30], np.concatenate([np.arange(50) % 17 + 3, np.arange(30) % 11 + 5])
    mixture = SourceMixture(sizes, [3, 1], seed=0, epoch_size=100)
    assert mixture.counts == [75, 25]
    dataset = _MixtureItems(["x" * int(n) for n in lengths], mixture)
    sampler = LengthGroupedBatchSampler(dataset, batch_size=16, seed=0)
    for epoch in range(3):
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch)
        items = mixture.source_of(np.array([dataset[i] for batch in sampler for i in batch]))
        assert len(items) == 96
        assert abs((items == 0).sum() - 0.75 * 96) <= 100 % 16, (items == 0).sum()
        assert np.bincount(mixture.source_of(mixture.epoch_items(epoch))).tolist() == [75, 25]


def test_mixture_uses_every_item_once_before_repeating_and_is_seeded():
    mixture = SourceMixture([100, 10], [3, 1], seed=5, epoch_size=40)  # 30 of the 100, 10 of the 10 per epoch
    epochs = [mixture.epoch_items(epoch) for epoch in range(4)]
    first = np.concatenate([items[items < 100] for items in epochs])  # 120 positions of source 0's stream
    assert len(np.unique(first[:90])) == 90 and set(first) == set(range(100))
    assert np.bincount(first).tolist().count(2) == 20
    assert all(sorted(items[items >= 100].tolist()) == list(range(100, 110)) for items in epochs)
    assert np.array_equal(SourceMixture([100, 10], [3, 1], seed=5, epoch_size=40).epoch_items(2), epochs[2])
    assert not np.array_equal(SourceMixture([100, 10], [3, 1], seed=6, epoch_size=40).epoch_items(2), epochs[2])
    assert not np.array_equal(epochs[0], epochs[1])
    # One source drawn at its own size: every item once per epoch, in index order (the old behaviour).
    assert np.array_equal(SourceMixture([7], [2.0]).epoch_items(3), np.arange(7))


# The recipes end to end ------------------------------------------------------------------------------------------


def add_language_args(sources, tiny_base, tmp_path, out):
    return [
        "--model_name_or_path", str(tiny_base), "--language", "de", "--output_dir", str(out),
        "--parallel_data", f"{sources / 'news'}=1,{sources / 'm30k'}=3",
        "--eval_sets", json.dumps([{"name": "tatoeba", "files": {k: str(v) for k, v in
                                                               tatoeba_files(sources / "tatoeba", "de").items()}}]),
        "--eval_every_steps", "5", "--own_tokenizer", "true", "--tokenizer_vocab_size", "120", "--lora_r", "4",
        "--batch_size", "16", "--epochs", "2", "--learning_rate", "1e-2", "--warmup_steps", "2",
        "--log_every_steps", "4", "--cache_dir", str(tmp_path / "cache"), "--max_text_length", "32",
    ]


def test_add_language_on_two_sources_counts_pairs_and_resumes_exactly(tmp_path, sources, tiny_base):
    recipe = load_recipe("add_language")
    straight = recipe.main(add_language_args(sources, tiny_base, tmp_path, tmp_path / "straight"))["nlt"]
    # 192 items per epoch (128 + 64 pairs), 3:1 -> 48 from news, 144 from m30k (2.25 passes of it); 2 epochs.
    assert straight["pairs_seen"] == {"news": 96, "m30k": 288}
    assert straight["sources"]["news"]["languages"] == {"de": 128} and straight["sources"]["m30k"]["pairs"] == 64
    # Evaluated on news' val split (m30k has none) and the Tatoeba files.
    assert set(straight["eval"]) == {"news", "tatoeba"}
    assert set(straight["eval"]["tatoeba"]["de"]) == {"source_to_target_acc1", "target_to_source_acc1"}
    curve = [json.loads(line) for line in (tmp_path / "straight" / "nlt_curve.jsonl").read_text().splitlines()]
    assert curve == straight["curve"]
    assert [row["step"] for row in curve] == [0, 5, 10, 15, 20, 24]
    assert [row["pairs_seen_total"] for row in curve] == [16 * row["step"] for row in curve]
    assert curve[-1]["pairs_seen"] == straight["pairs_seen"] and curve[-1]["eval"] == straight["eval"]
    log = [json.loads(line) for line in (tmp_path / "straight" / "nlt_log.jsonl").read_text().splitlines()]
    assert log[-1]["pairs_seen/news"] == 96 and log[-1]["pairs_seen"] == 384

    # Stopped mid-epoch (step 7 of 12), then resumed: the same acquirer, counts and curve.
    args = add_language_args(sources, tiny_base, tmp_path, tmp_path / "resumed")
    stopped = recipe.main([*args, "--stop_after_steps", "7"])["nlt"]
    assert stopped["finished"] is False and sum(stopped["pairs_seen"].values()) == 7 * 16
    assert [row["step"] for row in stopped["curve"]] == [0, 5]
    resumed = recipe.main([*args, "--resume_from_checkpoint", "latest"])["nlt"]
    assert resumed["pairs_seen"] == straight["pairs_seen"] and resumed["curve"] == straight["curve"]
    files = sorted(p.name for p in (tmp_path / "straight" / "acquirer").glob("*.safetensors"))
    assert files and files == sorted(p.name for p in (tmp_path / "resumed" / "acquirer").glob("*.safetensors"))
    for name in files:
        a, b = (load_file(str(tmp_path / run / "acquirer" / name)) for run in ("straight", "resumed"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_distill_text_on_two_sources_with_the_source_side(tmp_path, sources, tiny_base):
    recipe = load_recipe("distill_text")
    flat = tmp_path / "flat"
    write_pairs(flat, "train", sentence_pairs()[:32])
    parts = [ParallelPart("a", "de", ["x"], ["e1"]), ParallelPart("a", "fr", ["y"], ["e1"]),
             ParallelPart("b", "de", ["z"], ["e2"]), ParallelPart("b", "fr", ["w"], ["e3"])]
    assert [(p.source, p.language, p.texts) for p in recipe.with_source_side(parts, "en")] == [
        ("a", "de", ["x"]), ("a", "fr", ["y"]), ("a", "en", ["e1"]),
        ("b", "de", ["z"]), ("b", "fr", ["w"]), ("b", "en", ["e2"]), ("b", "en", ["e3"])]
    metrics = recipe.main([
        "--teacher", str(tiny_base), "--student", str(tiny_base), "--languages", "de", "--include_source", "true",
        "--parallel_data", f"[{{path: {sources / 'news'}, weight: 1}}, {{path: {flat}, weight: 1, name: flat}}]",
        "--output_dir", str(tmp_path / "out"), "--batch_size", "16", "--epochs", "1", "--warmup_steps", "1",
        "--cache_dir", str(tmp_path / "cache"), "--max_text_length", "32",
    ])
    # (128 + 32) German and as many English sentences; equal weights over 320 items: 160 each.
    assert metrics["train_pairs"] == 320 and metrics["pairs_seen"] == {"news": 160, "flat": 160}
    assert set(metrics["bitext"]) == {"news"} and set(metrics["bitext"]["news"]) == {"de"}


def test_the_shared_news_parallel_and_multi30k_folders_resolve():
    from conftest import shared_data_dir

    data = shared_data_dir()
    if not (data / "news-parallel" / "en-de").is_dir() or not (data / "multi30k").is_dir():
        pytest.skip(f"no news-parallel / multi30k under {data}")
    sources = parse_parallel_sources(f"{data / 'news-parallel'}=0.7,{data / 'multi30k'}=0.3")
    parts, missing = load_parallel_parts(sources, "train", "en", ["de", "fr"])
    assert [(p.source, p.language, len(p)) for p in parts] == [
        ("news-parallel", "de", 45_974), ("news-parallel", "fr", 22_052), ("multi30k", "de", 29_000),
        ("multi30k", "fr", 29_000)] and not missing
    with pytest.raises(ParallelFilesNotFound, match=r"source 'news-parallel' .* no 'test_2016_flickr' split"):
        load_parallel_parts(sources, "test_2016_flickr", "en", ["de"])
    parts, _ = load_parallel_parts(sources, "test_2016_flickr", "en", ["de"], every_source=False)
    assert [(p.source, len(p)) for p in parts] == [("multi30k", 1000)]
    assert len(load_parallel_parts(sources[:1], "val", "en", ["zh"])[0][0]) == 1000
