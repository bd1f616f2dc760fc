"""Teacher learning pieces: parallel data, bitext accuracy, the loss, the embedding cache, text encoders."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import CORPUS, tiny_mclip_config, tiny_text_config
from transformers import BertModel

import mmml
from mmml.data.parallel import ParallelDataError, load_parallel_files, load_parallel_manifest, parallel_files_in
from mmml.eval import bitext_accuracy
from mmml.losses import ContrastiveLoss, DistillationLoss, ParallelDistillationLoss
from mmml.modeling.embedding_transfer import piece_surface, transfer_embeddings
from mmml.modeling.text_encoder import TextEncoder
from mmml.training.text_distillation import cached_tensor


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_parallel_files_of_unequal_length_name_both_files(tmp_path):
    en = write_lines(tmp_path / "train.en", ["a dog", "a cat", "a bird"])
    de = write_lines(tmp_path / "train.de", ["ein Hund", "eine Katze"])
    with pytest.raises(ParallelDataError, match=r"train\.en \(en\) has 3 lines.*train\.de \(de\) has 2"):
        load_parallel_files({"en": en, "de": de})
    write_lines(de, ["ein Hund", "eine Katze", "ein Vogel"])
    assert load_parallel_files(parallel_files_in(tmp_path, "train", ["en", "de"]))["de"][2] == "ein Vogel"
    with pytest.raises(ParallelDataError, match=r"train\.fr.*has \['train\.de', 'train\.en'\]"):
        parallel_files_in(tmp_path, "train", ["en", "fr"])
    write_lines(de, ["ein Hund", "", "ein Vogel"])
    with pytest.raises(ParallelDataError, match=r"empty lines: \[2\]"):
        load_parallel_files({"en": en, "de": de})


def test_parallel_manifest_names_the_row_missing_a_language(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"en": "a dog", "de": "ein Hund"}) + "\n" + json.dumps({"en": "a cat"}) + "\n")
    with pytest.raises(ParallelDataError, match=r"pairs\.jsonl:2 has no 'de' sentence"):
        load_parallel_manifest(path, ["en", "de"])
    assert load_parallel_manifest(path, ["en"]) == {"en": ["a dog", "a cat"]}


def test_bitext_accuracy_on_known_embeddings():
    target = torch.eye(4)
    source = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0], [0, 0, 0.9, 0.1]])
    scores = bitext_accuracy(source, target)
    # source 2 is closest to target 3, source 3 to target 2: 2 of 4 right; target 3 -> source 2 wrong too.
    assert scores == {"source_to_target_acc1": 0.5, "target_to_source_acc1": 0.5}
    tied = bitext_accuracy(torch.ones(3, 2), torch.ones(3, 2))  # ties count against
    assert tied == {"source_to_target_acc1": 0.0, "target_to_source_acc1": 0.0}
    with pytest.raises(ValueError, match=r"\[3, 2\] and \[4, 2\]"):
        bitext_accuracy(torch.ones(3, 2), torch.ones(4, 2))


def test_parallel_distillation_loss_parts():
    torch.manual_seed(0)
    student, teacher = torch.randn(8, 5), torch.randn(8, 5)
    s, t = F.normalize(student, dim=-1), F.normalize(teacher, dim=-1)
    mse_only = ParallelDistillationLoss(mse_weight=1.0)(student, teacher)
    torch.testing.assert_close(mse_only, (2 - 2 * (s * t).sum(-1)).mean())
    raw = ParallelDistillationLoss(mse_weight=1.0, normalize=False)(student, teacher)
    torch.testing.assert_close(raw, DistillationLoss()(student, teacher))
    contrastive = ParallelDistillationLoss(mse_weight=0.0, contrastive_weight=1.0, temperature=0.1)(student, teacher)
    torch.testing.assert_close(contrastive, ContrastiveLoss(local_loss=True, gather_with_grad=True)(s, t, 10.0))
    both = ParallelDistillationLoss(mse_weight=2.0, contrastive_weight=0.5, temperature=0.1)(student, teacher)
    torch.testing.assert_close(both, 2.0 * mse_only + 0.5 * contrastive)
    with pytest.raises(ValueError, match="not both 0"):
        ParallelDistillationLoss(mse_weight=0.0, contrastive_weight=0.0)


def test_cached_tensor_computes_once_per_key(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return torch.arange(6.0).reshape(2, 3)

    first = cached_tensor(tmp_path, {"model": "a", "texts": "x"}, compute)
    again = cached_tensor(tmp_path, {"texts": "x", "model": "a"}, compute)
    assert torch.equal(first, again) and len(calls) == 1
    cached_tensor(tmp_path, {"model": "b", "texts": "x"}, compute)
    assert len(calls) == 2
    assert not list(tmp_path.glob(".*tmp"))


def test_transfer_embeddings_starts_pieces_at_their_base_subwords(tiny_tokenizer):
    from transformers import BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "ein", "hund", "##e", "kreis", "roter"]
    base_tokenizer = BertTokenizerFast(vocab_file=_write_vocab(vocab))
    base = torch.randn(len(vocab), 6)
    table = transfer_embeddings(tiny_tokenizer, base_tokenizer, base)
    assert table.shape == (len(tiny_tokenizer), 6)
    pieces = tiny_tokenizer.convert_ids_to_tokens(list(range(len(tiny_tokenizer))))
    for new_id, piece in enumerate(pieces):
        ids = base_tokenizer(piece_surface(piece), add_special_tokens=False)["input_ids"]
        if piece_surface(piece) == "ein":
            torch.testing.assert_close(table[new_id], base[vocab.index("ein")])
        if ids and all(i != base_tokenizer.unk_token_id for i in ids) and new_id > 4:
            torch.testing.assert_close(table[new_id], base[ids].mean(0))
    torch.testing.assert_close(table[tiny_tokenizer.cls_token_id], base[vocab.index("[CLS]")])
    torch.testing.assert_close(table[tiny_tokenizer.pad_token_id], base[vocab.index("[PAD]")])


def _write_vocab(vocab):
    import tempfile

    handle = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
    handle.write("\n".join(vocab) + "\n")
    handle.close()
    return handle.name


def test_text_encoder_pools_backbones_and_uses_projected_features(tiny_tokenizer):
    torch.manual_seed(0)
    bert = BertModel(tiny_text_config(), add_pooling_layer=False).eval()
    inputs = tiny_tokenizer(CORPUS[:3], padding=True, return_tensors="pt")
    hidden = bert(**inputs).last_hidden_state
    mask = inputs["attention_mask"].unsqueeze(-1).float()
    torch.testing.assert_close(TextEncoder(bert, "mean")(**inputs), (hidden * mask).sum(1) / mask.sum(1))
    torch.testing.assert_close(TextEncoder(bert, "cls")(**inputs), hidden[:, 0])
    mclip = mmml.MCLIPModel(tiny_mclip_config()).eval()
    expected = mclip.get_text_features(**inputs).pooler_output
    assert torch.equal(TextEncoder(mclip)(**inputs), expected)
    with pytest.raises(ValueError, match="pooling must be one of"):
        TextEncoder(bert, "max")
