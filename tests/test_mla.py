"""MLA: acquirers as LoRA adapters, bit-identical base language, per-sample routing, save/load."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import CORPUS, tiny_text_config, tiny_vision_config

import mmml  # noqa: F401  (registers the Auto classes)
from mmml.models.mla import AcquirerMismatchError, MLAConfig, MLAModel, MLAProcessor, UnknownLanguageError
from mmml.modeling.embedding_transfer import transfer_embeddings
from mmml.processing import train_multilingual_tokenizer


def tiny_mla(seed: int = 0) -> MLAModel:
    torch.manual_seed(seed)
    config = MLAConfig(text_config=tiny_text_config(), vision_config=tiny_vision_config(), projection_dim=16)
    return MLAModel(config).eval()


def randomize_acquirer(model: MLAModel, code: str, seed: int) -> None:
    """Give an acquirer non-zero LoRA B weights (a fresh one starts as the identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.acquirer_parameters(code):
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.5)


@pytest.fixture
def texts(tiny_tokenizer):
    return tiny_tokenizer(CORPUS[:4], padding=True, return_tensors="pt")


def text_embeds(model, inputs, language=None):
    with torch.no_grad():
        return model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                       language=language).pooler_output


def test_base_language_is_bit_identical_with_acquirers_installed(texts):
    model = tiny_mla()
    before = text_embeds(model, texts)
    for seed, code in enumerate(["de", "fr", "cs"]):
        model.add_language(code, r=4)
        randomize_acquirer(model, code, seed)
    assert torch.equal(text_embeds(model, texts), before)
    assert torch.equal(text_embeds(model, texts, language="en"), before)
    model.set_language("de")
    assert not torch.allclose(text_embeds(model, texts), before)
    model.set_language("en")
    assert torch.equal(text_embeds(model, texts), before)
    # A base-language row inside a mixed batch is computed exactly as without any acquirer.
    mixed = text_embeds(model, texts, language=["en", "de", "en", "fr"])
    assert torch.equal(mixed[[0, 2]], before[[0, 2]])


def test_mixed_batch_routes_each_sample_through_its_own_acquirer(texts):
    model = tiny_mla()
    for seed, code in enumerate(["de", "fr"]):
        model.add_language(code, r=4)
        randomize_acquirer(model, code, seed + 1)
    mixed = text_embeds(model, texts, language=["de", "fr", "en", "de"])
    per_language = {code: text_embeds(model, texts, language=code) for code in ("de", "fr", "en")}
    for row, code in enumerate(["de", "fr", "en", "de"]):
        torch.testing.assert_close(mixed[row], per_language[code][row], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(per_language["de"][0], per_language["fr"][0])


def test_new_acquirer_starts_as_base_and_trains_alone(texts):
    model = tiny_mla()
    before = text_embeds(model, texts)
    model.add_language("de", r=4)
    torch.testing.assert_close(text_embeds(model, texts, language="de"), before)  # LoRA B starts at zero
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in name and ".de." in name for name in trainable)
    model.train()
    target = torch.randn_like(before)
    optimizer = torch.optim.Adam(model.acquirer_parameters("de"), lr=1e-2)
    base_state = {k: v.clone() for k, v in model.base_state_dict().items()}
    losses = []
    for _ in range(30):
        out = model.get_text_features(**texts, language="de").pooler_output
        loss = torch.nn.functional.mse_loss(out, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    assert all(torch.equal(v, base_state[k]) for k, v in model.base_state_dict().items())
    model.eval()
    assert torch.equal(text_embeds(model, texts), before)


def test_unknown_language_lists_installed():
    model = tiny_mla()
    model.add_language("de", r=4)
    with pytest.raises(UnknownLanguageError, match=r"'xx'.*installed: \['de'\].*base language 'en'"):
        model.set_language("xx")
    with pytest.raises(ValueError, match="base language"):
        model.add_language("en")


def test_remove_language_leaves_others(texts):
    model = tiny_mla()
    for seed, code in enumerate(["de", "fr"]):
        model.add_language(code, r=4)
        randomize_acquirer(model, code, seed)
    fr = text_embeds(model, texts, language="fr")
    model.remove_language("de")
    assert model.languages == ["fr"]
    assert torch.equal(text_embeds(model, texts, language="fr"), fr)
    with pytest.raises(UnknownLanguageError):
        text_embeds(model, texts, language="de")


def test_acquirer_saves_and_loads_alone(tmp_path, texts):
    model = tiny_mla()
    model.add_language("de", r=4)
    randomize_acquirer(model, "de", 3)
    expected = text_embeds(model, texts, language="de")
    folder = model.save_language("de", tmp_path / "de")
    acquirer_bytes = sum(f.stat().st_size for f in folder.rglob("*.safetensors"))
    base_bytes = sum(t.numel() * t.element_size() for t in model.base_state_dict().values())
    assert acquirer_bytes < base_bytes / 2

    fresh = tiny_mla()  # same seed: the same base weights
    assert fresh.load_language(tmp_path / "de") == "de"
    assert torch.equal(text_embeds(fresh, texts, language="de"), expected)
    assert not any(p.requires_grad for p in fresh.parameters())


def test_acquirer_for_another_base_refuses_to_load(tmp_path):
    model = tiny_mla(seed=0)
    model.config._name_or_path = "org/base-a"
    model.add_language("de", r=4)
    model.save_language("de", tmp_path / "de")
    other = tiny_mla(seed=1)
    with pytest.raises(AcquirerMismatchError, match="made for base model 'org/base-a'"):
        other.load_language(tmp_path / "de")


def test_language_embeddings_and_tokenizer_round_trip(tmp_path, tiny_processor):
    german = ["ein kleiner roter Kreis", "ein großes blaues Quadrat oben", "zwei grüne Sterne unten links"] * 30
    de_tokenizer = train_multilingual_tokenizer(german, vocab_size=60, model_max_length=32)
    processor = MLAProcessor(image_processor=tiny_processor.image_processor, tokenizer=tiny_processor.tokenizer)
    processor.set_language_tokenizer("de", de_tokenizer)
    model = tiny_mla()
    table = transfer_embeddings(de_tokenizer, processor.tokenizer, model.text_model.get_input_embeddings().weight)
    assert table.shape == (len(de_tokenizer), model.config.text_config.hidden_size)
    model.add_language("de", r=4, embedding_table=table)
    randomize_acquirer(model, "de", 5)
    assert any(p is model.language_embeddings["de"].weight for p in model.acquirer_parameters("de"))

    texts = ["ein kleiner roter Kreis", CORPUS[0], "zwei grüne Sterne"]
    languages = ["de", "en", "de"]
    inputs = processor(text=texts, language=languages, return_tensors="pt")
    assert inputs["language"] == languages
    german_ids = de_tokenizer(texts[0])["input_ids"]
    assert inputs["input_ids"][0, : len(german_ids)].tolist() == german_ids
    english_only = processor(text=[CORPUS[0]], return_tensors="pt")
    with torch.no_grad():
        mixed = model.get_text_features(**inputs).pooler_output
        english = model.get_text_features(**english_only).pooler_output
    torch.testing.assert_close(mixed[1], english[0], rtol=1e-5, atol=1e-6)

    model.save_pretrained(tmp_path / "mla")
    processor.save_pretrained(tmp_path / "mla")
    assert (tmp_path / "mla" / "acquirers" / "de" / "tokenizer").is_dir()
    code = (
        "import sys, torch, mmml\n"
        "from transformers import AutoModel, AutoProcessor\n"
        "path, texts, langs = sys.argv[1], sys.argv[2].split('|'), sys.argv[3].split('|')\n"
        "model = AutoModel.from_pretrained(path).eval(); processor = AutoProcessor.from_pretrained(path)\n"
        "assert type(model).__name__ == 'MLAModel' and model.languages == ['de'], model.languages\n"
        "inputs = processor(text=texts, language=langs, return_tensors='pt')\n"
        "with torch.no_grad(): out = model.get_text_features(**inputs).pooler_output\n"
        "torch.save(out, path + '/out.pt')\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "mla"), "|".join(texts), "|".join(languages)], check=True)
    torch.testing.assert_close(torch.load(tmp_path / "mla" / "out.pt"), mixed, rtol=0, atol=0)


def test_mla_is_registered_with_auto_classes():
    from transformers import AutoConfig, AutoModel

    assert isinstance(AutoConfig.for_model("mla"), MLAConfig)
    config = MLAConfig(text_config=tiny_text_config(), vision_config=tiny_vision_config(), projection_dim=16)
    model = AutoModel.from_config(config)
    assert type(model) is MLAModel and model.languages == [] and model.config.base_language == "en"


def test_push_language_to_hub_uploads_the_acquirer_alone(tmp_path, monkeypatch):
    import huggingface_hub

    model = tiny_mla()
    model.add_language("de", r=4)
    uploaded = {}

    def fake_create_repo(self, repo_id, **kwargs):
        uploaded["repo"] = repo_id

    def fake_upload_folder(self, repo_id, folder_path, **kwargs):
        uploaded["files"] = sorted(str(p.relative_to(folder_path)) for p in __import__("pathlib").Path(folder_path).rglob("*"))
        return "commit"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", fake_create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", fake_upload_folder)
    model.push_language_to_hub("de", "org/mla-de")
    assert uploaded["repo"] == "org/mla-de"
    assert uploaded["files"] == ["acquirer_config.json", "adapter_config.json", "adapter_model.safetensors"]


def test_acquirer_pulls_by_repo_id_through_a_real_hub_server(tmp_path):
    """An acquirer published alone on a (real, loopback) Hub server loads by repo id into its base."""
    import json
    import os
    import shutil
    import textwrap

    pytest.importorskip("olah", reason="needs PyPI's `olah` (a Hub mirror server)")
    if shutil.which("git") is None:
        pytest.skip("needs the `git` CLI to build the olah mirror")
    from hub_server import OlahServer, publish_to_git_mirror

    repo_id = "mmml-test/mla-de"
    model = tiny_mla()
    model.save_pretrained(tmp_path / "base")
    model.add_language("de", r=4)
    randomize_acquirer(model, "de", 7)
    model.save_language("de", tmp_path / "acquirer")
    ids = torch.tensor([[0, 10, 11, 12, 2]])
    with torch.no_grad():
        expected = model.get_text_features(input_ids=ids, language="de").pooler_output
    publish_to_git_mirror(tmp_path / "acquirer", tmp_path / "mirror", repo_id)
    with OlahServer(tmp_path / "mirror", tmp_path / "olah", probe_repo=repo_id) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "TRANSFORMERS_"))}
        env.update(HF_ENDPOINT=server.endpoint, HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path / "hf_home"),
                   HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
        script = textwrap.dedent(f"""
            import json, torch, mmml
            model = mmml.MLAModel.from_pretrained({str(tmp_path / 'base')!r}).eval()
            assert model.load_language({repo_id!r}) == "de"
            with torch.no_grad():
                out = model.get_text_features(input_ids=torch.tensor([[0, 10, 11, 12, 2]]), language="de").pooler_output
            print("RESULT " + json.dumps(out.tolist()))
        """)
        result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    pulled = torch.tensor(json.loads(result.stdout.split("RESULT ", 1)[1]))
    # Exact: same inputs and kernels, and from_pretrained leaves weights aligned like constructed ones.
    torch.testing.assert_close(pulled, expected, rtol=0, atol=0)
