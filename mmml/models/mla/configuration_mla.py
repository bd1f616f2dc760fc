"""MLA configuration."""

from __future__ import annotations

from ...modeling.configuration_multi_encoder import MultiEncoderConfig


class MLAConfig(MultiEncoderConfig):
    """Configuration of MLA (multilingual acquisition): a frozen dual encoder plus language acquirers.

    All dual-encoder fields (`vision_config`, `text_config`, `projection_dim`, poolings, logit
    scale) describe the frozen base model. In addition:

    Args:
        base_language: the language the base model already speaks; it never goes through an acquirer.
        languages: the acquirers saved with this checkpoint (under `acquirers/<code>/`), loaded
            again by `from_pretrained`. Maintained by the model; not set by hand.
    """

    model_type = "mla"

    base_language: str = "en"
    languages: list[str] | None = None

    def __post_init__(self, **kwargs):
        self.languages = list(self.languages or [])
        super().__post_init__(**kwargs)
        if not isinstance(self.base_language, str) or not self.base_language:
            raise ValueError(f"base_language must be a non-empty language code, got {self.base_language!r}")
        if self.base_language in self.languages:
            raise ValueError(f"languages must not contain the base language {self.base_language!r}: {self.languages}")
