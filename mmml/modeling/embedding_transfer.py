"""Initial embeddings for a new vocabulary, transferred from a pretrained model's vocabulary."""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase

_SPECIAL_TOKEN_ATTRIBUTES = ("cls_token", "sep_token", "pad_token", "unk_token", "mask_token", "bos_token", "eos_token")
_WORD_BOUNDARY_MARKERS = ("\u2581", "\u0120", "##")  # sentencepiece, byte-level BPE, WordPiece


def piece_surface(piece: str) -> str:
    """The text a vocabulary piece stands for, without word-boundary markers."""
    for marker in _WORD_BOUNDARY_MARKERS:
        piece = piece.replace(marker, " ")
    return piece.strip()


@torch.no_grad()
def transfer_embeddings(
    new_tokenizer: PreTrainedTokenizerBase,
    base_tokenizer: PreTrainedTokenizerBase,
    base_embeddings: torch.Tensor,
) -> torch.Tensor:
    """An embedding table `[len(new_tokenizer), hidden]` that starts where the base model already is.

    Each new piece gets the mean of the base embeddings of the base tokenizer's pieces for the
    same text (so "▁Hund" starts at the mean of "hu" and "##nd"); special tokens get the base
    special token with the same role (CLS, SEP, PAD, ...); a piece the base tokenizer cannot
    express gets the mean of all base embeddings. A random table would make the new language
    start from nothing; this one starts from the base model's subword knowledge.
    """
    vocab_size = len(new_tokenizer)
    pieces = new_tokenizer.convert_ids_to_tokens(list(range(vocab_size)))
    surfaces = [piece_surface(piece) for piece in pieces]
    encoded = base_tokenizer(surfaces, add_special_tokens=False)["input_ids"]
    fallback = base_embeddings.mean(dim=0)
    table = fallback.repeat(vocab_size, 1)
    unk = base_tokenizer.unk_token_id
    for new_id, base_ids in enumerate(encoded):
        known = [i for i in base_ids if i != unk]
        if known:
            table[new_id] = base_embeddings[known].mean(dim=0)
    for attribute in _SPECIAL_TOKEN_ATTRIBUTES:
        new_id = getattr(new_tokenizer, f"{attribute}_id", None)
        base_id = getattr(base_tokenizer, f"{attribute}_id", None)
        if new_id is not None and base_id is not None:
            table[new_id] = base_embeddings[base_id]
    return table.to(base_embeddings.dtype)


@torch.no_grad()
def retokenize_text_tower(
    text_model, new_tokenizer: PreTrainedTokenizerBase, base_tokenizer: PreTrainedTokenizerBase
) -> None:
    """Give a trained text tower a new vocabulary in place: its input embedding table becomes
    :func:`transfer_embeddings` of its current one (and `config.vocab_size` follows).

    For a corpus whose words the tower's tokenizer splits badly or maps to its unknown token (a
    model trained on image captions, fine-tuned on video captions with motion verbs), so training
    does not start by re-learning words from characters.
    """
    table = transfer_embeddings(new_tokenizer, base_tokenizer, text_model.get_input_embeddings().weight)
    text_model.resize_token_embeddings(len(new_tokenizer), mean_resizing=False)
    text_model.get_input_embeddings().weight.copy_(table)
