"""Batches of `MultimodalPairs` items: media decoded per batch, then the processor, keyed by its input names.

Decoding happens here, in the DataLoader's worker processes when `num_workers > 0`: a dataset
holds paths or encoded bytes, and each batch decodes only its own items. A file that cannot be
decoded raises a `BadSampleError` naming the file and the dataset row, or, with
`skip_bad_samples=True`, is left out of the batch with a warning naming both and counted in the
batch's `num_skipped_samples` (which `mmml.training.run_training_loop` pops and totals).

Media columns are decoded by the decoder registered for their name (`register_media_decoder`):
`image` by `mmml.data.decode_image` out of the box; video and audio decoders register the same way.
A decoder takes one source (path, bytes, `{"bytes", "path"}` dict, ...) and returns what the
processor takes for one item; it signals a bad file by raising a ValueError or OSError whose
message names the file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from mmml.data.images import decode_image
from mmml.data.manifest import BadSampleError

__all__ = [
    "DECODE_ERRORS",
    "MEDIA_DECODERS",
    "MediaDecoder",
    "MultimodalCollator",
    "register_media_decoder",
]

logger = logging.getLogger(__name__)

# What a decoder raises for a bad file (ImageDecodeError is a ValueError).
DECODE_ERRORS = (ValueError, OSError)
# The batch key that counts the samples left out (see mmml.training.loop.SKIPPED_SAMPLES_KEY).
SKIPPED_SAMPLES_KEY = "num_skipped_samples"
# `__call__` arguments of the processor, by the usual column names.
_DEFAULT_PROCESSOR_ARGUMENTS = {"image": "images", "video": "videos", "audio": "audio"}


class MediaDecoder:
    """A decoder for one media column: `decode(source)` and the processor argument it feeds (`images`, ...)."""

    __slots__ = ("decode", "processor_argument")

    def __init__(self, decode: Callable[[Any], Any], processor_argument: str):
        if processor_argument not in ("images", "videos", "audio"):
            raise ValueError(f"processor_argument must be 'images', 'videos' or 'audio', got {processor_argument!r}")
        self.decode = decode
        self.processor_argument = processor_argument

    def __getstate__(self):
        return (self.decode, self.processor_argument)

    def __setstate__(self, state):
        self.decode, self.processor_argument = state

    def __repr__(self) -> str:
        name = getattr(self.decode, "__qualname__", repr(self.decode))
        return f"MediaDecoder({name}, {self.processor_argument!r})"


# column name -> decoder; collators copy it when they are built.
MEDIA_DECODERS: dict[str, MediaDecoder] = {"image": MediaDecoder(decode_image, "images")}


def register_media_decoder(column: str, decode: Callable[[Any], Any], processor_argument: str | None = None) -> None:
    """Decode the media column `column` with `decode` (a module-level function, so workers can pickle it).

    `processor_argument`: the processor's `__call__` argument the decoded values go to; by default
    `images` / `videos` / `audio` for the columns `image` / `video` / `audio`. Collators built
    afterwards use it.
    """
    argument = processor_argument or _DEFAULT_PROCESSOR_ARGUMENTS.get(column)
    if argument is None:
        raise ValueError(f"say which processor argument column {column!r} feeds: processor_argument='images', "
                         "'videos' or 'audio'")
    MEDIA_DECODERS[column] = MediaDecoder(decode, argument)


def _describe_source(source: Any) -> str:
    if isinstance(source, Mapping):
        path = source.get("path")
        data = source.get("bytes")
        return str(path) if path else f"<{len(data) if data else 0} bytes>"
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    return str(source) if isinstance(source, str) else type(source).__name__


class MultimodalCollator:
    """Turns a list of `MultimodalPairs` items into the model's inputs.

    Each media column the items carry and a decoder is registered for is decoded, then the
    processor runs on the batch (`text` and the decoded media). The batch holds the processor's
    outputs named in `processor.model_input_names` plus, when the items have them:
    `sample_ids` (from `index`), `paired_input_ids` / `paired_attention_mask` (the processor's text
    inputs of `paired_text`, each name prefixed with `paired_`), `labels` (stacked), `language`
    (with `route_by_language`) and, with `skip_bad_samples`, `num_skipped_samples` (an int, on every
    batch, 0 included).

    Args:
        processor: a `MultimodalProcessor` (or any processor with `model_input_names` and
            `__call__(text=..., images=..., ...)`).
        max_text_length: truncate texts to this many tokens (default: the tokenizer's limit).
        skip_bad_samples: leave out items whose media cannot be decoded (warning + count) instead
            of raising a `BadSampleError`.
        route_by_language: pass the items' languages to the processor (`language=`, MLA) and keep
            the `language` it returns.
        decoders: column -> `MediaDecoder`; default: a copy of `MEDIA_DECODERS` when built.

    Picklable (no lambdas), so it works in DataLoader worker processes of any start method.
    """

    def __init__(self, processor, max_text_length: int | None = None, skip_bad_samples: bool = False,
                 route_by_language: bool = False, decoders: Mapping[str, MediaDecoder] | None = None):
        from transformers import PreTrainedTokenizerBase

        if isinstance(processor, PreTrainedTokenizerBase):
            raise TypeError("MultimodalCollator takes the processor (e.g. MCLIPProcessor), not its tokenizer")
        if max_text_length is not None and max_text_length < 1:
            raise ValueError(f"max_text_length must be >= 1 or None, got {max_text_length}")
        self.processor = processor
        self.max_text_length = max_text_length
        self.skip_bad_samples = skip_bad_samples
        self.route_by_language = route_by_language
        self.decoders = dict(MEDIA_DECODERS if decoders is None else decoders)

    def _text_kwargs(self) -> dict[str, Any]:
        return {} if self.max_text_length is None else {"text_kwargs": {"max_length": self.max_text_length}}

    def _decode(self, items: list[dict]) -> tuple[list[dict], dict[str, list], int]:
        """The items whose media decoded, their decoded media per column, and how many were left out."""
        columns = [column for column in self.decoders if column in items[0]]
        kept: list[dict] = []
        decoded: dict[str, list] = {column: [] for column in columns}
        skipped = 0
        for item in items:
            values = {}
            try:
                for column in columns:
                    values[column] = self.decoders[column].decode(item[column])
            except DECODE_ERRORS as error:
                row = item.get("row", item.get("index"))
                source = _describe_source(item[column])
                message = f"dataset row {row}: cannot decode its {column} {source}: {error}"
                if not self.skip_bad_samples:
                    raise BadSampleError(f"{message} (pass skip_bad_samples=True to skip such samples)") from error
                logger.warning("skipping %s", message)
                skipped += 1
                continue
            kept.append(item)
            for column, value in values.items():
                decoded[column].append(value)
        return kept, decoded, skipped

    def __call__(self, items: Sequence[dict]) -> dict[str, Any]:
        items = list(items)
        if not items:
            raise ValueError("cannot collate an empty batch")
        kept, decoded, skipped = self._decode(items)
        if not kept:
            raise BadSampleError(f"none of the {len(items)} samples of this batch could be decoded (see the warnings)")
        media = {self.decoders[column].processor_argument: values for column, values in decoded.items()}
        texts = [item["text"] for item in kept] if "text" in kept[0] else None
        extra: dict[str, Any] = {}
        if self.route_by_language and texts is not None:
            extra["language"] = [item["language"] for item in kept]
        inputs = self.processor(text=texts, **media, return_tensors="pt", **self._text_kwargs(), **extra)
        names = set(self.processor.model_input_names)
        batch = {key: value for key, value in inputs.items() if key in names}
        if self.route_by_language and "language" in inputs:
            batch["language"] = inputs["language"]
        first = kept[0]
        if "index" in first:
            batch["sample_ids"] = torch.tensor([item["index"] for item in kept], dtype=torch.long)
        if "paired_text" in first:
            paired = self.processor(text=[item["paired_text"] for item in kept], return_tensors="pt",
                                    **self._text_kwargs(), **extra)
            batch.update({f"paired_{key}": value for key, value in paired.items() if key in names})
        if "labels" in first:
            batch["labels"] = torch.stack([torch.as_tensor(item["labels"]) for item in kept])
        if self.skip_bad_samples:
            batch[SKIPPED_SAMPLES_KEY] = skipped
        return batch

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({type(self.processor).__name__}, max_text_length={self.max_text_length}, "
                f"skip_bad_samples={self.skip_bad_samples}, decoders={sorted(self.decoders)})")
