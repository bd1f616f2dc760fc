"""A modality mmml has never heard of, defined here and nowhere else: a 1-D signal with its own tiny tower.

It is registered (modality, tower config/model, a family), trained for a few steps through the shared
training loop, saved and reloaded through the Auto classes, all without touching `mmml/`.
"""

from __future__ import annotations

import math

import torch
from accelerate import Accelerator
from conftest import tiny_text_config
from torch import nn
from torch.utils.data import DataLoader
from transformers import AutoConfig, AutoModel, PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling

from mmml.modeling import Modality, MultiEncoderConfig, MultiEncoderModel, register_modality
from mmml.training import LoopSettings, build_optimizer_and_schedule, run_training_loop

NUM_CLASSES, LENGTH = 8, 64


class SignalEncoderConfig(PreTrainedConfig):
    model_type = "toy_signal_encoder"
    hidden_size: int = 32
    patch: int = 4


class SignalEncoderModel(PreTrainedModel):
    """Spectrum magnitudes of `patch`-long windows -> a small MLP: `[batch, LENGTH]` -> `[batch, windows, hidden]`."""

    config_class = SignalEncoderConfig
    main_input_name = "signal_values"

    def __init__(self, config: SignalEncoderConfig):
        super().__init__(config)
        self.embed = nn.Linear(LENGTH // config.patch // 2 + 1, config.hidden_size)
        self.mix = nn.Sequential(nn.GELU(), nn.Linear(config.hidden_size, config.hidden_size))
        self.post_init()

    def forward(self, signal_values: torch.Tensor, return_dict: bool = True, **kwargs):
        windows = signal_values.unflatten(-1, (self.config.patch, -1))  # [batch, patch windows, LENGTH / patch]
        spectrum = torch.fft.rfft(windows, dim=-1).abs()
        hidden = self.mix(self.embed(spectrum))
        return BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=hidden.mean(dim=1))


class SignalTextConfig(MultiEncoderConfig):
    model_type = "toy_signal_text"


class SignalTextModel(MultiEncoderModel):
    config_class = SignalTextConfig
    main_input_name = "signal_values"


SIGNAL = Modality(
    name="signal", config_key="signal_config", tower_attribute="signal_model", projection_attribute="signal_projection",
    pooling_field="signal_pooling", input_names=("signal_values",), tower_arguments={"signal_values": ("signal_values",)},
    default_model_type="toy_signal_encoder",
)


def register_toy_types() -> None:
    register_modality(SIGNAL, exist_ok=True)
    AutoConfig.register(SignalEncoderConfig.model_type, SignalEncoderConfig, exist_ok=True)
    AutoModel.register(SignalEncoderConfig, SignalEncoderModel, exist_ok=True)
    AutoConfig.register(SignalTextConfig.model_type, SignalTextConfig, exist_ok=True)
    AutoModel.register(SignalTextConfig, SignalTextModel, exist_ok=True)


class SignalCaptions(torch.utils.data.Dataset):
    """Sine waves of NUM_CLASSES frequencies with random phase and noise; the 'caption' names the frequency."""

    def __init__(self, size: int, seed: int):
        generator = torch.Generator().manual_seed(seed)
        self.classes = torch.randint(NUM_CLASSES, (size,), generator=generator)
        phase = torch.rand(size, 1, generator=generator) * 2 * math.pi
        time = torch.arange(LENGTH).float()
        self.signals = torch.sin((self.classes.float().unsqueeze(1) + 1) * 2 * time * 2 * math.pi / LENGTH + phase)
        self.signals += 0.1 * torch.randn(self.signals.shape, generator=generator)

    def __len__(self) -> int:
        return len(self.classes)

    def __getitem__(self, index: int) -> dict:
        # token ids: [CLS]=1, a word for the frequency (10 + class), "hertz"=5, [SEP]=2
        return {"signal_values": self.signals[index],
                "input_ids": torch.tensor([1, 10 + int(self.classes[index]), 5, 2]),
                "attention_mask": torch.ones(4, dtype=torch.long)}


def toy_model() -> SignalTextModel:
    register_toy_types()
    torch.manual_seed(0)
    config = SignalTextConfig(modalities=["signal", "text"], signal_config={"model_type": "toy_signal_encoder"},
                              text_config=tiny_text_config(), projection_dim=16, logit_scale_init_value=math.log(10))
    return SignalTextModel(config)


def retrieval_accuracy(model, data: SignalCaptions) -> float:
    """Signal -> class-caption top-1 accuracy against the NUM_CLASSES possible captions."""
    captions = torch.tensor([[1, 10 + k, 5, 2] for k in range(NUM_CLASSES)])
    model.eval()
    with torch.no_grad():
        text = model.get_text_features(input_ids=captions, attention_mask=torch.ones_like(captions)).pooler_output
        signal = model.get_signal_features(signal_values=data.signals).pooler_output
    return float(((signal @ text.T).argmax(1) == data.classes).float().mean())


def test_a_registered_toy_modality_trains_through_the_shared_loop_and_round_trips(tmp_path):
    model = toy_model()
    assert isinstance(model.signal_model, SignalEncoderModel) and model.signal_projection.in_features == 32
    train, held_out = SignalCaptions(512, seed=0), SignalCaptions(256, seed=1)
    before = retrieval_accuracy(model, held_out)
    first = {k: torch.stack([train[i][k] for i in range(32)]) for k in ("signal_values", "input_ids", "attention_mask")}
    with torch.no_grad():
        initial_loss = model.train()(**first, return_loss=True).loss.item()  # about ln 32 = 3.47 untrained
    accelerator = Accelerator(cpu=True)
    loader = DataLoader(train, batch_size=32, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    optimizer, scheduler = build_optimizer_and_schedule(model, 3e-3, 0.0, 5, 60)
    prepared, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    result = run_training_loop(
        accelerator, prepared, optimizer, scheduler, loader, lambda batch: prepared(**batch, return_loss=True),
        LoopSettings(total_steps=60, log_every_steps=10), checkpoint_dir=tmp_path / "run",
        log_path=tmp_path / "run" / "log.jsonl",
    )
    losses = [record["loss"] for record in result.records]
    assert [record["loss/contrastive"] for record in result.records] == losses  # the one named term
    assert losses[-1] < 0.6 * initial_loss, (initial_loss, losses)  # observed 3.47 -> 1.58 (floor ~ln 4)
    after = retrieval_accuracy(model, held_out)
    # chance is 1 / 8 = 0.125
    assert after > 0.5 and after > before + 0.25, (before, after)

    model.save_pretrained(tmp_path / "saved")
    reloaded = AutoModel.from_pretrained(tmp_path / "saved")
    assert isinstance(reloaded, SignalTextModel) and reloaded.config.modalities == ["signal", "text"]
    model.eval()
    with torch.no_grad():
        batch = {k: torch.stack([train[i][k] for i in range(8)]) for k in ("signal_values", "input_ids",
                                                                            "attention_mask")}
        torch.testing.assert_close(reloaded(**batch).logits["signal_text"], model(**batch).logits["signal_text"])
