"""Loaded weights sit in aligned memory of their own, so a reloaded model computes the constructed one's bits.

transformers 5 loads safetensors zero-copy: every parameter is a view of the memory-mapped file,
at whatever (8-byte-aligned, rarely 64-byte-aligned) offset the file puts it. Some BLAS code
paths sum in another order for unaligned data (oneMKL's SSE4.2 path for a single-row `F.linear`,
which is also what MKL falls back to on some non-Intel CPUs), so a reloaded model could differ
from the constructed one by an ulp. `CheckedLoadingMixin.from_pretrained` calls `align_parameters`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import REPO_ROOT, tiny_mclip_config, tiny_text_config, tiny_vision_config
from torch import nn
from transformers import AutoModel

import mmml
from mmml.models.mla import MLAConfig, MLAModel
from mmml.modeling.loading import align_parameters

ALIGNMENT = 64


def _tensors(model: nn.Module):
    return [*model.named_parameters(), *model.named_buffers()]


def _file_mappings() -> list[tuple[int, int, str]]:
    """`(start, end, path)` of this process's file-backed memory mappings (Linux only; else none)."""
    try:
        lines = open("/proc/self/maps").read().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split(None, 5)
        if len(fields) == 6 and fields[5].startswith("/"):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            found.append((start, end, fields[5]))
    return found


def _assert_aligned_and_owned(model: nn.Module, checkpoint_folder=None) -> None:
    bad = {name: tensor.data_ptr() % ALIGNMENT for name, tensor in _tensors(model)
           if tensor.data_ptr() % ALIGNMENT or not tensor.is_contiguous()}
    assert not bad, f"tensors not in aligned, contiguous memory (name: address % {ALIGNMENT}): {bad}"
    storages = [tensor.untyped_storage() for _, tensor in _tensors(model)]
    assert all(storage.nbytes() == tensor.numel() * tensor.element_size()
               for storage, (_, tensor) in zip(storages, _tensors(model)))
    if checkpoint_folder is not None:  # none left in the memory-mapped checkpoint (where transformers puts them)
        mapped = [(lo, hi) for lo, hi, path in _file_mappings() if path.startswith(str(checkpoint_folder))]
        in_file = [name for name, tensor in _tensors(model) if any(lo <= tensor.data_ptr() < hi for lo, hi in mapped)]
        assert not in_file, f"tensors still in the checkpoint's file mapping: {in_file}"


def _inputs(batch: int, vocab: int = 120, length: int = 7, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab, (batch, length), generator=g)
    attention_mask = torch.ones_like(input_ids)
    if batch > 1:
        attention_mask[0, length - 2:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask,
            "pixel_values": torch.randn(batch, 3, 32, 32, generator=g)}


def _tiny_mclip() -> mmml.MCLIPModel:
    torch.manual_seed(0)
    return mmml.MCLIPModel(tiny_mclip_config()).eval()


def _tiny_mla_with_acquirer(embedding_table: bool = False) -> MLAModel:
    torch.manual_seed(0)
    model = MLAModel(MLAConfig(text_config=tiny_text_config(), vision_config=tiny_vision_config(),
                               projection_dim=16)).eval()
    model.add_language("de", r=4, embedding_table=torch.randn(60, 32) if embedding_table else None)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for parameter in model.acquirer_parameters("de"):
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return model


def test_from_pretrained_leaves_every_mclip_tensor_aligned(tmp_path):
    _tiny_mclip().save_pretrained(tmp_path)
    _assert_aligned_and_owned(AutoModel.from_pretrained(tmp_path), tmp_path)
    _assert_aligned_and_owned(mmml.MCLIPModel.from_pretrained(tmp_path), tmp_path)
    _assert_aligned_and_owned(mmml.MCLIPModel.from_pretrained(tmp_path, output_loading_info=True)[0], tmp_path)


def test_from_pretrained_leaves_every_mla_tensor_aligned_acquirers_included(tmp_path):
    _tiny_mla_with_acquirer(embedding_table=True).save_pretrained(tmp_path)
    reloaded = MLAModel.from_pretrained(tmp_path)
    assert reloaded.languages == ["de"]
    assert any("lora_" in name for name, _ in reloaded.named_parameters())
    assert any(name.startswith("language_embeddings.") for name, _ in reloaded.named_parameters())
    _assert_aligned_and_owned(reloaded, tmp_path)
    assert align_parameters(reloaded) == 0


@pytest.mark.parametrize("batch", [1, 3])  # one row: BLAS takes its matrix-vector path
def test_reloaded_mclip_computes_the_constructed_models_bits(tmp_path, batch):
    model = _tiny_mclip()
    model.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    inputs = _inputs(batch)
    text = {k: inputs[k] for k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        assert torch.equal(reloaded(**inputs).logits_per_image, model(**inputs).logits_per_image)
        assert torch.equal(reloaded.get_text_features(**text).pooler_output,
                           model.get_text_features(**text).pooler_output)
        assert torch.equal(reloaded.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output,
                           model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output)


@pytest.mark.parametrize("batch", [1, 3])
def test_reloaded_mla_computes_the_constructed_models_bits(tmp_path, batch):
    model = _tiny_mla_with_acquirer()
    model.save_pretrained(tmp_path)
    reloaded = MLAModel.from_pretrained(tmp_path).eval()
    inputs = _inputs(batch)
    text = {k: inputs[k] for k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        for language in ("en", "de"):
            assert torch.equal(reloaded.get_text_features(**text, language=language).pooler_output,
                               model.get_text_features(**text, language=language).pooler_output)
        assert torch.equal(reloaded(**inputs, language="de").logits_per_image,
                           model(**inputs, language="de").logits_per_image)


def test_reloaded_model_is_bit_identical_on_mkls_alignment_sensitive_path(tmp_path):
    """oneMKL's SSE4.2 kernels (MKL_ENABLE_INSTRUCTIONS=SSE4_2; on some non-Intel CPUs MKL's own
    choice) give a single-row `F.linear` other bits for a weight that is not 16-byte aligned: the
    reloaded model must still match the constructed one there."""
    script = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(REPO_ROOT / 'tests')!r})
        from conftest import tiny_mclip_config
        from transformers import AutoModel
        import mmml
        torch.manual_seed(0)
        model = mmml.MCLIPModel(tiny_mclip_config()).eval()
        model.save_pretrained({str(tmp_path)!r})
        reloaded = AutoModel.from_pretrained({str(tmp_path)!r}).eval()
        g = torch.Generator().manual_seed(0)
        ids, pixels = torch.randint(5, 120, (1, 7), generator=g), torch.randn(1, 3, 32, 32, generator=g)
        with torch.no_grad():
            a, b = model(input_ids=ids, pixel_values=pixels), reloaded(input_ids=ids, pixel_values=pixels)
        for field in ("text_embeds", "image_embeds", "logits_per_image"):
            assert torch.equal(getattr(a, field), getattr(b, field)), (field, (getattr(a, field) - getattr(b, field)).abs().max())
        print("OK")
    """)
    env = dict(os.environ, MKL_ENABLE_INSTRUCTIONS="SSE4_2", HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]


def _unaligned(shape: tuple[int, ...], offset_elements: int = 1) -> torch.Tensor:
    """A float32 view starting `offset_elements` past an aligned allocation (4 bytes per element)."""
    numel = torch.Size(shape).numel()
    view = torch.randn(numel + offset_elements)[offset_elements:].view(shape)
    assert view.data_ptr() % ALIGNMENT != 0
    return view


def test_align_parameters_moves_an_unaligned_view_and_counts_it():
    layer = nn.Linear(8, 5)
    weight = layer.weight
    values = _unaligned((5, 8))
    layer.weight.data = values
    layer.register_buffer("scale", _unaligned((7,), offset_elements=3))
    expected_weight, expected_scale = values.clone(), layer.scale.clone()
    assert align_parameters(layer) == 2
    assert layer.weight is weight and layer.weight.requires_grad and layer.weight.dtype == torch.float32
    assert layer.weight.data_ptr() % ALIGNMENT == 0 and layer.scale.data_ptr() % ALIGNMENT == 0
    assert torch.equal(layer.weight, expected_weight) and torch.equal(layer.scale, expected_scale)
    assert layer.weight.untyped_storage().data_ptr() != values.untyped_storage().data_ptr()
    assert align_parameters(layer) == 0  # the bias was aligned all along; nothing moves twice


def test_align_parameters_moves_non_contiguous_and_shared_storage_and_with_own_memory_all():
    module = nn.Module()
    buffer = torch.randn(2, 16)  # aligned, but two parameters are views into it
    module.first = nn.Parameter(buffer[0], requires_grad=False)
    module.second = nn.Parameter(buffer[1])
    module.transposed = nn.Parameter(torch.randn(6, 4).t())
    module.slice = nn.Parameter(torch.randn(1000)[:16])  # a small view into a larger storage
    module.fine = nn.Parameter(torch.randn(3))
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    assert align_parameters(module) == 4
    assert not module.first.requires_grad and module.second.requires_grad
    assert module.first.untyped_storage().data_ptr() != module.second.untyped_storage().data_ptr()
    assert module.transposed.is_contiguous() and module.slice.untyped_storage().nbytes() == 16 * 4
    for name, parameter in module.named_parameters():
        assert torch.equal(parameter, before[name]), name
    _assert_aligned_and_owned(module)
    fine = module.fine.data_ptr()
    assert align_parameters(module, own_memory=True) == 5  # every CPU tensor, aligned or not
    assert module.fine.data_ptr() != fine and torch.equal(module.fine, before["fine"])


def test_align_parameters_keeps_tied_weights_tied():
    module = nn.Module()
    module.encoder = nn.Embedding(10, 8)
    module.decoder = nn.Linear(8, 10, bias=False)
    module.decoder.weight = module.encoder.weight  # one Parameter under two names
    module.encoder.weight.data = _unaligned((10, 8))
    # Two Parameter objects over the very same memory stay over one memory too.
    shared = _unaligned((4,), offset_elements=2)
    module.alias_a, module.alias_b = nn.Parameter(shared), nn.Parameter(shared)
    assert align_parameters(module) == 3  # the tied weight once, each alias object once
    assert module.decoder.weight is module.encoder.weight
    assert module.encoder.weight.data_ptr() % ALIGNMENT == 0
    assert module.alias_a.data_ptr() == module.alias_b.data_ptr() and module.alias_a.data_ptr() % ALIGNMENT == 0
    with torch.no_grad():
        module.encoder.weight[0, 0] = 123.0
    assert module.decoder.weight[0, 0] == 123.0


def test_align_parameters_honours_a_larger_alignment_and_rejects_a_bad_one():
    layer = nn.Linear(4, 4)
    layer.weight.data = _unaligned((4, 4))
    assert align_parameters(layer, alignment=256) >= 1
    assert layer.weight.data_ptr() % 256 == 0 and layer.bias.data_ptr() % 256 == 0
    assert align_parameters(layer, alignment=256) == 0
    with pytest.raises(ValueError, match="power of two"):
        align_parameters(layer, alignment=48)
