"""MLA processor: the base tokenizer plus one tokenizer per language that brings its own."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoTokenizer, BatchEncoding, PreTrainedTokenizerBase

from ...processing.multimodal import MultimodalProcessor
from .acquirer_files import ACQUIRERS_FOLDER, TOKENIZER_FOLDER

# Text options the mixed-language path consumes itself (not passed on to the media components).
_TEXT_ONLY_KWARGS = ("text_kwargs", "padding", "truncation", "max_length")


class MLAProcessor(MultimodalProcessor):
    """Image processor + base tokenizer + `language_tokenizers` (code -> tokenizer).

    `processor(text=..., language="de")` tokenizes with German's own tokenizer when its acquirer
    has one, else with the base tokenizer; `language` may be a list (one code per text) for a
    mixed-language batch. The returned encoding carries `language`, so `model(**inputs)` routes
    each text through its acquirer. Language tokenizers save under `acquirers/<code>/tokenizer/`,
    beside the acquirer weights.
    """

    def __init__(self, image_processor=None, tokenizer=None, **kwargs):
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, **kwargs)
        self.language_tokenizers: dict[str, PreTrainedTokenizerBase] = {}

    def set_language_tokenizer(self, code: str, tokenizer: PreTrainedTokenizerBase) -> None:
        self.language_tokenizers[code] = tokenizer

    def tokenizer_for(self, code: str | None) -> PreTrainedTokenizerBase:
        return self.language_tokenizers.get(code, self.tokenizer)

    def __call__(self, text=None, images=None, videos=None, audio=None,
                 language: str | Sequence[str] | None = None, **kwargs):
        if text is None or language is None:
            return super().__call__(text=text, images=images, videos=videos, audio=audio, **kwargs)
        texts = [text] if isinstance(text, str) else list(text)
        languages = [language] * len(texts) if isinstance(language, str) else list(language)
        if len(languages) != len(texts):
            raise ValueError(f"got {len(languages)} languages for {len(texts)} texts")
        if all(code not in self.language_tokenizers for code in languages):
            encoding = super().__call__(text=text, images=images, videos=videos, audio=audio, **kwargs)
        else:
            self._require("text")
            encoding = self._encode_mixed(texts, languages, kwargs)
            if images is not None or videos is not None or audio is not None:
                media_kwargs = {key: value for key, value in kwargs.items() if key not in _TEXT_ONLY_KWARGS}
                encoding.update(super().__call__(images=images, videos=videos, audio=audio, **media_kwargs))
        encoding["language"] = languages if not isinstance(language, str) else language
        return encoding

    def _encode_mixed(self, texts: list[str], languages: list[str], kwargs: dict) -> BatchEncoding:
        """Each text with its language's tokenizer, then padded together (right, with each one's pad id)."""
        text_kwargs = {**kwargs, **(kwargs.get("text_kwargs") or {})}
        max_length = text_kwargs.get("max_length")
        ids: list[list[int] | None] = [None] * len(texts)
        pads: list[int] = [0] * len(texts)
        for code in dict.fromkeys(languages):
            tokenizer = self.tokenizer_for(code)
            positions = [i for i, c in enumerate(languages) if c == code]
            encoded = tokenizer([texts[i] for i in positions], truncation=text_kwargs.get("truncation", True),
                                max_length=max_length or tokenizer.model_max_length, padding=False)["input_ids"]
            for position, sample_ids in zip(positions, encoded):
                ids[position], pads[position] = sample_ids, tokenizer.pad_token_id or 0
        width = max(len(sample) for sample in ids)
        input_ids = [sample + [pad] * (width - len(sample)) for sample, pad in zip(ids, pads)]
        attention_mask = [[1] * len(sample) + [0] * (width - len(sample)) for sample in ids]
        data = {"input_ids": input_ids, "attention_mask": attention_mask}
        if kwargs.get("return_tensors") == "pt":
            data = {k: torch.tensor(v, dtype=torch.long) for k, v in data.items()}
        return BatchEncoding(data)

    # -- saving and loading ------------------------------------------------------------------

    def save_language_tokenizer(self, code: str, acquirer_folder: str | os.PathLike) -> None:
        self.language_tokenizers[code].save_pretrained(str(Path(acquirer_folder) / TOKENIZER_FOLDER))

    def load_language_tokenizer(self, code: str, acquirer_folder: str | os.PathLike) -> bool:
        """Take the tokenizer saved in an acquirer folder, if it has one; returns whether it had."""
        folder = Path(acquirer_folder) / TOKENIZER_FOLDER
        if not folder.is_dir():
            return False
        self.language_tokenizers[code] = AutoTokenizer.from_pretrained(str(folder))
        return True

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs):
        saved = super().save_pretrained(save_directory, *args, **kwargs)
        for code in self.language_tokenizers:
            self.save_language_tokenizer(code, Path(save_directory) / ACQUIRERS_FOLDER / code)
        return saved

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        processor = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        root = Path(pretrained_model_name_or_path)
        if not root.is_dir():
            from huggingface_hub import snapshot_download

            hub_kwargs = {k: kwargs[k] for k in ("revision", "token", "cache_dir") if k in kwargs}
            root = Path(snapshot_download(str(pretrained_model_name_or_path),
                                          allow_patterns=[f"{ACQUIRERS_FOLDER}/*/{TOKENIZER_FOLDER}/*"], **hub_kwargs))
        for folder in sorted((root / ACQUIRERS_FOLDER).glob(f"*/{TOKENIZER_FOLDER}")):
            processor.load_language_tokenizer(folder.parent.name, folder.parent)
        return processor
