"""Batches of `MultimodalPairs` items: media decoded per batch, then the processor, keyed by its input names.

Decoding happens here, in the DataLoader's worker processes when `num_workers > 0`: a dataset
holds paths or encoded bytes, and each batch decodes only its own items. A file that cannot be
decoded raises a `BadSampleError` naming the file and the dataset row, or, with
`skip_bad_samples=True`, is left out of the batch with a warning naming both and counted in the
batch's `num_skipped_samples` (which `mmml.training.run_training_loop` pops and totals).

Media columns are decoded by the decoder registered for their name (`register_media_decoder`):
`image` by `mmml.data.decode_image` and `video` by `mmml.data.video.VideoDecoder` (8 frames, TSN
`"segments"` sampling, decord or PyAV) out of the box; audio decoders register the same way.
A decoder takes one source (path, bytes, `{"bytes", "path"}` dict, ...) and returns what the
processor takes for one item; it signals a bad file by raising a ValueError or OSError whose
message names the file.

Random draws while decoding (which frames a training clip shows): a decoder registered with
`seeded=True` is called as `decode(source, rng=rng)`, `rng` a `numpy.random.Generator` seeded by the
item's `media_seed` (`MultimodalPairs` items carry `(seed, epoch, index)`) and the column's name, so
a resumed run and every DataLoader worker see the same frames; items without a `media_seed` get
`rng=None` (fresh entropy). Decoder options (frames per clip, sampling) are set per collator:
`MultimodalCollator(processor, decoder_options={"video": {"num_frames": 16}})`; evaluation uses
`decoder_options=EVALUATION_DECODER_OPTIONS` (uniform sampling); code that decodes outside a
collator takes `evaluation_media_decoder(column)`.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from mmml.data.images import decode_image
from mmml.data.manifest import BadSampleError
from mmml.data.video import VideoDecoder

__all__ = [
    "DECODE_ERRORS",
    "EVALUATION_DECODER_OPTIONS",
    "MEDIA_DECODERS",
    "MediaDecoder",
    "MultimodalCollator",
    "evaluation_media_decoder",
    "media_rng",
    "register_media_decoder",
]

logger = logging.getLogger(__name__)

# What a decoder raises for a bad file (ImageDecodeError is a ValueError).
DECODE_ERRORS = (ValueError, OSError)
# The batch key that counts the samples left out (see mmml.training.loop.SKIPPED_SAMPLES_KEY).
SKIPPED_SAMPLES_KEY = "num_skipped_samples"
# `__call__` arguments of the processor, by the usual column names.
_DEFAULT_PROCESSOR_ARGUMENTS = {"image": "images", "video": "videos", "audio": "audio"}
# `decoder_options` for evaluation collators: clips sampled uniformly (deterministic), not TSN segments.
EVALUATION_DECODER_OPTIONS: dict[str, dict[str, Any]] = {"video": {"sampling": "uniform"}}


class MediaDecoder:
    """A decoder for one media column: `decode(source)` and the processor argument it feeds (`images`, ...).

    `seeded=True`: `decode` draws at random and takes `rng=` (a `numpy.random.Generator` or None),
    which the collator seeds per item (see the module docstring). A `decode` with a
    `replace(**options)` method (e.g. `VideoDecoder`) takes options through `with_options`.
    """

    __slots__ = ("decode", "processor_argument", "seeded")

    def __init__(self, decode: Callable[..., Any], processor_argument: str, seeded: bool = False):
        if processor_argument not in ("images", "videos", "audio"):
            raise ValueError(f"processor_argument must be 'images', 'videos' or 'audio', got {processor_argument!r}")
        self.decode = decode
        self.processor_argument = processor_argument
        self.seeded = bool(seeded)

    def with_options(self, **options) -> MediaDecoder:
        """This decoder with some options changed (`decode.replace(**options)`, validated now)."""
        replace = getattr(self.decode, "replace", None)
        if not callable(replace):
            name = getattr(self.decode, "__qualname__", type(self.decode).__name__)
            raise ValueError(f"the decoder {name} takes no options (got {sorted(options)}); register a decoder "
                             "object with a replace(**options) method, such as mmml.data.video.VideoDecoder")
        return MediaDecoder(replace(**options), self.processor_argument, self.seeded)

    def __getstate__(self):
        return (self.decode, self.processor_argument, self.seeded)

    def __setstate__(self, state):
        self.decode, self.processor_argument = state[:2]
        self.seeded = state[2] if len(state) > 2 else False

    def __repr__(self) -> str:
        name = getattr(self.decode, "__qualname__", repr(self.decode))
        seeded = ", seeded=True" if self.seeded else ""
        return f"MediaDecoder({name}, {self.processor_argument!r}{seeded})"


# column name -> decoder; collators copy it when they are built.
MEDIA_DECODERS: dict[str, MediaDecoder] = {
    "image": MediaDecoder(decode_image, "images"),
    "video": MediaDecoder(VideoDecoder(num_frames=8, sampling="segments"), "videos", seeded=True),
}


def register_media_decoder(column: str, decode: Callable[..., Any], processor_argument: str | None = None,
                           seeded: bool = False) -> None:
    """Decode the media column `column` with `decode` (a module-level function, so workers can pickle it).

    `processor_argument`: the processor's `__call__` argument the decoded values go to; by default
    `images` / `videos` / `audio` for the columns `image` / `video` / `audio`. `seeded`: `decode`
    takes `rng=` (per-item random draws, see the module docstring). Collators built afterwards use it.
    """
    argument = processor_argument or _DEFAULT_PROCESSOR_ARGUMENTS.get(column)
    if argument is None:
        raise ValueError(f"say which processor argument column {column!r} feeds: processor_argument='images', "
                         "'videos' or 'audio'")
    MEDIA_DECODERS[column] = MediaDecoder(decode, argument, seeded=seeded)


def evaluation_media_decoder(column: str) -> MediaDecoder | None:
    """The registered decoder of `column` with `EVALUATION_DECODER_OPTIONS` applied (uniform clips), or None."""
    decoder = MEDIA_DECODERS.get(column)
    options = EVALUATION_DECODER_OPTIONS.get(column)
    return decoder.with_options(**options) if decoder is not None and options else decoder


def media_rng(item: Mapping[str, Any], column: str) -> np.random.Generator | None:
    """The generator a seeded decoder of `column` draws from for `item`: from its `media_seed`, else None."""
    seed = item.get("media_seed")
    if seed is None:
        return None
    entropy = [int(value) for value in np.atleast_1d(np.asarray(seed, dtype=np.int64))]
    return np.random.default_rng(entropy + [zlib.crc32(column.encode("utf-8"))])


def _describe_source(source: Any) -> str:
    if isinstance(source, Mapping):
        path = source.get("path")
        data = source.get("bytes")
        return str(path) if path else f"<{len(data) if data else 0} bytes>"
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    if isinstance(source, np.ndarray):
        return f"<{type(source).__name__} of shape {tuple(source.shape)}>"
    if isinstance(source, (list, tuple)):
        return f"<in-memory clip of {len(source)} frames>"
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
        decoder_options: column -> options for that column's decoder, e.g. `{"video": {"num_frames":
            16, "sampling": "uniform"}}` (`VideoDecoder`'s options: `num_frames`, `sampling`,
            `decoder`, `short_clip`, `num_threads`); checked when the collator is built.
            `EVALUATION_DECODER_OPTIONS` switches clips to uniform sampling.

    Picklable (no lambdas), so it works in DataLoader worker processes of any start method.
    """

    def __init__(self, processor, max_text_length: int | None = None, skip_bad_samples: bool = False,
                 route_by_language: bool = False, decoders: Mapping[str, MediaDecoder] | None = None,
                 decoder_options: Mapping[str, Mapping[str, Any]] | None = None):
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
        for column, options in (decoder_options or {}).items():
            if column not in self.decoders:
                raise ValueError(f"decoder_options for {column!r}, which has no decoder; "
                                 f"decoders: {sorted(self.decoders)}")
            self.decoders[column] = self.decoders[column].with_options(**options)

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
                    decoder = self.decoders[column]
                    if decoder.seeded:
                        values[column] = decoder.decode(item[column], rng=media_rng(item, column))
                    else:
                        values[column] = decoder.decode(item[column])
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
