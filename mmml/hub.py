"""Hub helpers: model cards rendered from the templates in `model_cards/`."""

from __future__ import annotations

import os
from pathlib import Path

from transformers import PreTrainedModel

from .modeling.towers import tower_hidden_size
from .utils.hub_files import local_folder  # noqa: F401  (public here since the start)

_CARD_DIRS = (Path(__file__).resolve().parent / "model_cards", Path(__file__).resolve().parents[1] / "model_cards")
_METRIC_COLUMNS = ("t2i_r1", "t2i_r5", "t2i_r10", "i2t_r1", "i2t_r5", "i2t_r10", "rsum")


def _template(model_type: str) -> str:
    for folder in _CARD_DIRS:
        path = folder / f"{model_type}.md"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    raise FileNotFoundError(f"no model card template for model type {model_type!r} in {[str(d) for d in _CARD_DIRS]}")


def _metric_columns(values: dict[str, float]) -> list[str]:
    """The table's columns for a gallery of images (`t2i_*`) or of another modality (`t2v_*`, `t2a_*`)."""
    letter = next((key[2] for key in values if key.startswith("t2") and key.endswith("_r1")), "i")
    return [column.replace("t2i", f"t2{letter}").replace("i2t", f"{letter}2t") for column in _METRIC_COLUMNS]


def metrics_table(metrics: dict[str, dict[str, float]] | None) -> str:
    """A Markdown table of retrieval metrics per language (rows) as returned by `RetrievalEvaluator`."""
    if not metrics:
        return "Not evaluated yet."
    columns = _metric_columns(next(iter(metrics.values())))
    header = "| language | " + " | ".join(columns) + " |"
    rule = "|---|" + "---:|" * len(columns)
    rows = [f"| {lang} | " + " | ".join(f"{values[k]:.1f}" for k in columns) + " |"
            for lang, values in metrics.items()]
    return "\n".join([header, rule, *rows]) + "\n\nRecalls in percent (test split)."


def _depth(config) -> str:
    """Layers of a transformer tower, or stages of a convolutional one (EfficientNet-Lite, ResNet)."""
    layers = getattr(config, "num_hidden_layers", None)
    if layers is not None:
        return str(layers)
    stages = getattr(config, "num_stages", None) or len(getattr(config, "depths", None) or []) or None
    return f"{stages} stages" if stages else "?"


def render_model_card(model: PreTrainedModel, repo_id: str, metrics: dict | None = None) -> str:
    """Fill the family's card template with the model's architecture and its metrics."""
    config = model.config
    languages = [lang for lang in (metrics or {}) if lang != "mean"]
    return _template(config.model_type).format(
        model_name=repo_id.rsplit("/", 1)[-1],
        repo_id=repo_id,
        languages_yaml="[" + ", ".join(languages) + "]",
        vision_type=config.vision_config.model_type,
        vision_layers=_depth(config.vision_config),
        vision_width=tower_hidden_size(config.vision_config),
        text_type=config.text_config.model_type,
        text_layers=config.text_config.num_hidden_layers,
        text_width=config.text_config.hidden_size,
        projection_dim=config.projection_dim,
        num_parameters=f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M",
        metrics_table=metrics_table(metrics),
    )


def save_model_card(model: PreTrainedModel, folder: str | os.PathLike, repo_id: str, metrics: dict | None = None) -> Path:
    """Write the rendered card as `README.md` in a saved-model folder (what `push_to_hub` uploads)."""
    path = Path(folder) / "README.md"
    path.write_text(render_model_card(model, repo_id, metrics), encoding="utf-8")
    return path
