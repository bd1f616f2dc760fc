"""MLA: a frozen dual encoder that learns new languages through small per-language acquirers."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from peft import LoraConfig
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers.modeling_outputs import BaseModelOutputWithPooling

from ...modeling.fingerprint import state_dict_fingerprint
from ...modeling.language_adapters import LanguageAdapters, strip_adapter_weights
from ...modeling.multi_encoder import MultiEncoderModel
from ...utils.hub_files import local_folder
from .acquirer_files import (
    ACQUIRERS_FOLDER,
    AcquirerInfo,
    AcquirerMismatchError,
    read_acquirer,
    write_acquirer,
)
from .configuration_mla import MLAConfig

# LoRA on the attention and dense projections of BERT-like towers (peft's module-name suffixes).
DEFAULT_TARGET_MODULES = ("query", "key", "value", "dense")
_LANGUAGE_EMBEDDINGS_PREFIX = "language_embeddings."

Languages = str | Sequence[str | None] | None


class UnknownLanguageError(KeyError):
    """A language with no acquirer on this model."""

    def __str__(self) -> str:  # KeyError would print the message with quotes
        return str(self.args[0])


class MLAModel(MultiEncoderModel):
    """Multilingual acquisition (Zhang et al.): the base dual encoder stays frozen; each language gets
    an acquirer (peft LoRA adapter named by its code in the text tower, plus optionally its own token
    embedding table for a tokenizer of its own).

    - `add_language(code, ...)` installs an acquirer, `remove_language(code)` drops it;
    - `set_language(code)` picks the language of later calls; `language=` on `get_text_features` /
      `forward` overrides it, per sample when given a list (a mixed-language batch: each sample
      goes through its own acquirer, the base language through none);
    - the base language (and any sample routed to it) computes exactly the base model's function,
      bit for bit, whatever acquirers are installed;
    - `save_language` / `load_language` / `push_language_to_hub` move one acquirer on its own;
      `save_pretrained` writes the base model plus every acquirer under `acquirers/<code>/`.
    """

    config_class = MLAConfig
    base_model_prefix = "mla"
    supports_text_length_buckets = False  # per-sample adapter routing needs the whole batch
    # `forward(..., language=...)` hands the language to the text path (per call, never stored on the model).
    extra_modality_inputs = {"text": ("language",)}

    def __init__(self, config: MLAConfig, vision_model=None, text_model=None):
        super().__init__(config, vision_model=vision_model, text_model=text_model)
        self.language_embeddings = nn.ModuleDict()
        self.acquirers = LanguageAdapters(self.text_model)
        self._default_language: str | None = None
        self._installed_languages: list[str] = []

    @classmethod
    def from_dual_encoder(cls, model: MultiEncoderModel, base_language: str = "en") -> "MLAModel":
        """An MLA model whose base is `model` (any mmml dual encoder, e.g. a trained M-CLIP), exactly."""
        skip = {"model_type", "architectures", "auto_map", "transformers_version", "languages", "base_language"}
        fields = {k: v for k, v in model.config.to_dict().items() if k not in skip}
        mla = cls(cls.config_class(**fields, base_language=base_language))
        mla.load_state_dict(model.state_dict(), strict=True)
        mla.config._name_or_path = model.config._name_or_path
        return mla.to(next(model.parameters()).dtype)

    # -- languages ---------------------------------------------------------------------------

    @property
    def languages(self) -> list[str]:
        """Languages with an installed acquirer (the base language is not among them)."""
        return sorted(self._installed_languages)

    @property
    def language(self) -> str:
        """The language later calls use when they pass none."""
        return self._default_language or self.config.base_language

    def _check_language(self, code: str) -> None:
        if code != self.config.base_language and code not in self._installed_languages:
            raise UnknownLanguageError(
                f"no acquirer for language {code!r}; installed: {self.languages} "
                f"(base language {self.config.base_language!r} needs none). Add one with "
                "add_language(code) or load_language(path)."
            )

    def set_language(self, code: str | None) -> None:
        """Use `code`'s acquirer in later calls (None or the base language: the base model)."""
        if code is not None:
            self._check_language(code)
        self._default_language = None if code == self.config.base_language else code

    def add_language(
        self,
        code: str,
        lora_config: LoraConfig | None = None,
        embedding_table: torch.Tensor | None = None,
        r: int = 16,
        lora_alpha: int | None = None,
        target_modules: Sequence[str] = DEFAULT_TARGET_MODULES,
    ) -> None:
        """Install a new, trainable acquirer for `code`; the base model and other acquirers are frozen.

        `lora_config` defaults to LoRA of rank `r` on `target_modules` of the text tower, with
        LoRA's usual start (B = 0, so the new acquirer starts as the base function).
        `embedding_table` (`[vocab, hidden]`, e.g. from `mmml.modeling.transfer_embeddings`) gives
        the language its own token embeddings, used with its own tokenizer (see `MLAProcessor`).
        """
        if code == self.config.base_language:
            raise ValueError(f"{code!r} is the base language; it never goes through an acquirer")
        if code in self._installed_languages:
            raise ValueError(f"language {code!r} already has an acquirer; remove_language({code!r}) first")
        if lora_config is None:
            lora_config = LoraConfig(r=r, lora_alpha=lora_alpha or r, target_modules=list(target_modules), lora_dropout=0.0)
        self.acquirers.add(code, lora_config)
        if embedding_table is not None:
            self._add_embedding_table(code, embedding_table)
        self._installed_languages.append(code)
        self.train_language(code)

    def _add_embedding_table(self, code: str, table: torch.Tensor) -> None:
        hidden = self.config.text_config.hidden_size
        if table.dim() != 2 or table.shape[1] != hidden:
            raise ValueError(
                f"embedding table for {code!r} must have shape [vocab_size, {hidden}] (the text tower's "
                f"hidden size), got {list(table.shape)}"
            )
        base = self.text_model.get_input_embeddings().weight
        embedding = nn.Embedding(table.shape[0], hidden, dtype=base.dtype, device=base.device)
        embedding.weight.data.copy_(table)
        self.language_embeddings[code] = embedding

    def remove_language(self, code: str) -> None:
        """Drop `code`'s acquirer; the others and the base model are untouched."""
        self._check_language(code)
        if code == self.config.base_language:
            raise ValueError(f"{code!r} is the base language and has no acquirer to remove")
        self.acquirers.remove(code)
        if code in self.language_embeddings:
            del self.language_embeddings[code]
        self._installed_languages.remove(code)
        if self._default_language == code:
            self._default_language = None

    def train_language(self, code: str | None) -> None:
        """Freeze everything except `code`'s acquirer (None: freeze everything)."""
        self.requires_grad_(False)
        self.acquirers.set_trainable(code)
        if code in self.language_embeddings:
            self.language_embeddings[code].requires_grad_(True)

    def acquirer_parameters(self, code: str) -> list[nn.Parameter]:
        """The parameters that make up `code`'s acquirer (LoRA weights + its own embeddings)."""
        self._check_language(code)
        names = [f".lora_A.{code}.", f".lora_B.{code}.", f"{_LANGUAGE_EMBEDDINGS_PREFIX}{code}."]
        return [p for n, p in self.named_parameters() if any(tag in n for tag in names)]

    def _per_sample_languages(self, language: Languages, batch_size: int) -> list[str]:
        if language is None:
            language = self.language
        languages = [language] * batch_size if isinstance(language, str) else list(language)
        if len(languages) != batch_size:
            raise ValueError(f"got {len(languages)} languages for a batch of {batch_size} texts")
        languages = [code or self.config.base_language for code in languages]
        for code in set(languages):
            self._check_language(code)
        return languages

    # -- features ----------------------------------------------------------------------------

    def get_text_features(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        language: Languages = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        """Projected text features; each sample goes through its language's acquirer.

        `input_ids` of a language with its own embedding table index that table (its own
        tokenizer's ids); all others index the base vocabulary.
        """
        languages = self._per_sample_languages(language, input_ids.shape[0])
        base = self.config.base_language
        if any(code in self.language_embeddings for code in languages):
            kwargs["inputs_embeds"] = self._embed_per_language(input_ids, languages)
            input_ids = None
        adapter_names = [None if code == base else code for code in languages]
        if all(name is None for name in adapter_names):
            return super().get_text_features(input_ids, attention_mask, token_type_ids, position_ids, **kwargs)
        if self._checkpoints_text_tower():
            return self._routed_text_features_checkpointed(adapter_names, input_ids, attention_mask, token_type_ids,
                                                           position_ids, **kwargs)
        with self.acquirers.route(adapter_names):
            return super().get_text_features(input_ids, attention_mask, token_type_ids, position_ids, **kwargs)

    def _checkpoints_text_tower(self) -> bool:
        return self.text_model.is_activation_checkpointing and self.training and torch.is_grad_enabled()

    def _routed_text_features_checkpointed(self, adapter_names, input_ids, attention_mask, token_type_ids,
                                           position_ids, **kwargs) -> BaseModelOutputWithPooling:
        """The routed text path under gradient checkpointing, as ONE checkpoint around the routed call.

        Per-sample routing is in effect only while `route` is entered; the tower's own per-layer
        checkpoints would recompute their layers during backward, after the routing is gone (a
        `CheckpointError`, or silently the wrong adapters). Checkpointing the whole routed call
        instead re-enters the routing when it recomputes, so backward sees exactly the forward's
        adapters; memory is still saved (only the tower's inputs are kept until backward).
        """
        def routed_call(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds):
            with self.acquirers.route(adapter_names), _layer_checkpointing_off(self.text_model):
                return MultiEncoderModel.get_text_features(
                    self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds=inputs_embeds,
                    **kwargs)

        inputs_embeds = kwargs.pop("inputs_embeds", None)
        return checkpoint(routed_call, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                          use_reentrant=False)

    def _embed_per_language(self, input_ids: torch.Tensor, languages: list[str]) -> torch.Tensor:
        """Each row embedded with its language's table (its own, else the base one), one lookup per language."""
        base_embeddings = self.text_model.get_input_embeddings()
        out = None
        for code in dict.fromkeys(languages):
            rows = torch.tensor([i for i, c in enumerate(languages) if c == code], device=input_ids.device)
            table = self.language_embeddings[code] if code in self.language_embeddings else base_embeddings
            ids = input_ids[rows]
            if int(ids.max()) >= table.num_embeddings:
                raise ValueError(
                    f"token id {int(ids.max())} is outside the {code!r} vocabulary "
                    f"({table.num_embeddings} ids): were these texts tokenized with {code!r}'s tokenizer?"
                )
            embedded = table(ids)
            if out is None:
                out = embedded.new_empty(*input_ids.shape, embedded.shape[-1])
            out = out.index_copy(0, rows, embedded)
        return out

    # -- saving and loading ------------------------------------------------------------------

    def base_state_dict(self) -> dict[str, torch.Tensor]:
        """The frozen base model's weights, as a model without acquirers names them."""
        state = strip_adapter_weights(self.state_dict())
        return {k: v for k, v in state.items() if not k.startswith(_LANGUAGE_EMBEDDINGS_PREFIX)}

    def base_fingerprint(self) -> str:
        """SHA-256 of the base weights (names, dtypes, shapes, values): which base an acquirer fits."""
        return state_dict_fingerprint(self.base_state_dict())

    def _base_name(self) -> str:
        return str(getattr(self.config, "_name_or_path", "") or "unnamed base model")

    def save_language(self, code: str, save_directory: str | os.PathLike, processor=None) -> Path:
        """Write `code`'s acquirer to its own folder (plus its tokenizer when `processor` has one)."""
        self._check_language(code)
        if code == self.config.base_language:
            raise ValueError(f"{code!r} is the base language and has no acquirer to save")
        embeddings = self.language_embeddings[code].weight if code in self.language_embeddings else None
        info = AcquirerInfo(
            language=code,
            base_model=self._base_name(),
            base_fingerprint=self.base_fingerprint(),
            embedding_vocab_size=None if embeddings is None else int(embeddings.shape[0]),
        )
        folder = write_acquirer(save_directory, info, self.acquirers.config(code), self.acquirers.state_dict(code), embeddings)
        if processor is not None and code in getattr(processor, "language_tokenizers", {}):
            processor.save_language_tokenizer(code, folder)
        return folder

    def load_language(
        self, path_or_repo_id: str | os.PathLike, processor=None, subfolder: str = "", **hub_kwargs
    ) -> str:
        """Install the acquirer saved at a folder or Hub repo; returns its language code.

        Raises `AcquirerMismatchError` naming the base model the acquirer needs when it was made
        for other base weights. With `processor`, the acquirer's own tokenizer (if any) goes to it.
        """
        folder = local_folder(path_or_repo_id, subfolder, **hub_kwargs)
        info, lora_config, weights, embeddings = read_acquirer(folder)
        fingerprint = self.base_fingerprint()
        if info.base_fingerprint != fingerprint:
            raise AcquirerMismatchError(
                f"the {info.language!r} acquirer at {path_or_repo_id} was made for base model {info.base_model!r} "
                f"(weights fingerprint {info.base_fingerprint[:12]}), but this model is {self._base_name()!r} "
                f"(fingerprint {fingerprint[:12]}); load it into {info.base_model!r}"
            )
        self.add_language(info.language, lora_config=lora_config, embedding_table=embeddings)
        self.acquirers.load_state_dict(info.language, weights)
        self.train_language(None)
        if processor is not None:
            processor.load_language_tokenizer(info.language, folder)
        return info.language

    def push_language_to_hub(self, code: str, repo_id: str, processor=None, private: bool | None = None,
                             commit_message: str | None = None, token: str | None = None) -> str:
        """Upload `code`'s acquirer alone to the Hub repo `repo_id` (created if needed)."""
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            self.save_language(code, tmp, processor=processor)
            info = api.upload_folder(
                repo_id=repo_id, folder_path=tmp, commit_message=commit_message or f"Upload {code} language acquirer"
            )
        return str(info)

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> None:
        """Save the base model and every acquirer (`acquirers/<code>/`); reload with `from_pretrained`."""
        kwargs.setdefault("state_dict", self.base_state_dict())
        self.config.languages = self.languages
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True) is False:
            return
        for code in self.languages:
            self.save_language(code, Path(save_directory) / ACQUIRERS_FOLDER / code)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        languages, model.config.languages = list(model.config.languages), []
        hub_kwargs = {k: kwargs[k] for k in ("revision", "token", "cache_dir") if k in kwargs}
        for code in languages:
            model.load_language(pretrained_model_name_or_path, subfolder=f"{ACQUIRERS_FOLDER}/{code}", **hub_kwargs)
        model.config.languages = model.languages
        return model


@contextlib.contextmanager
def _layer_checkpointing_off(tower: nn.Module):
    """Within the block, the tower's layers run without their own gradient checkpoints."""
    layers = [m for m in tower.modules() if getattr(m, "gradient_checkpointing", False) is True]
    for layer in layers:
        layer.gradient_checkpointing = False
    try:
        yield
    finally:
        for layer in layers:
            layer.gradient_checkpointing = True
