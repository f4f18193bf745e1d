"""Small random HF models, perturbed away from their initialisation, and checkpoint writers."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import transformers

VOCAB = 61  # not a multiple of 8: mamba_ssm pads it


def perturbed(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter moved by a random amount: no tensor keeps an initial value (ones, zeros,
    a constant) under which a wrong key map could still give equal logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model.eval()


def hf_mamba(hidden: int = 64, layers: int = 2, vocab: int = VOCAB, **kw) -> torch.nn.Module:
    cfg = transformers.MambaConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                                   **kw)
    torch.manual_seed(hidden + layers)
    return perturbed(transformers.MambaForCausalLM(cfg))


def hf_mamba2(hidden: int = 64, layers: int = 2, vocab: int = VOCAB, **kw) -> torch.nn.Module:
    kw = {"num_heads": 8, "head_dim": 16, "n_groups": 2, "state_size": 16, "chunk_size": 16,
          **kw}
    cfg = transformers.Mamba2Config(vocab_size=vocab, hidden_size=hidden,
                                    num_hidden_layers=layers, **kw)
    torch.manual_seed(hidden + layers + 1)
    return perturbed(transformers.Mamba2ForCausalLM(cfg))


def write_mamba_ssm(hf: torch.nn.Module, root: Path, *, layer: str = "Mamba1",
                    tie: bool = True, ssm_cfg: dict | None = None) -> Path:
    """A directory as mamba_ssm's ``MambaLMHeadModel.save_pretrained`` writes it (config.json
    with ssm_cfg, pytorch_model.bin holding the head beside a tied embedding), from an HF model
    of the same math: its vocabulary must already be padded to a multiple of 8."""
    c = hf.config
    root.mkdir(parents=True, exist_ok=True)
    state = {k.replace("backbone.embeddings.", "backbone.embedding."): v
             for k, v in hf.state_dict().items()}
    if tie:
        state["lm_head.weight"] = state["backbone.embedding.weight"]
    torch.save(state, root / "pytorch_model.bin")
    config = {"d_model": c.hidden_size, "d_intermediate": 0, "n_layer": c.num_hidden_layers,
              "vocab_size": VOCAB, "ssm_cfg": {"layer": layer, **(ssm_cfg or {})},
              "attn_layer_idx": [], "attn_cfg": {}, "rms_norm": True, "residual_in_fp32": True,
              "fused_add_norm": True, "pad_vocab_size_multiple": 8, "tie_embeddings": tie}
    (root / "config.json").write_text(json.dumps(config))
    return root


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def hf_states(hf: torch.nn.Module, ids: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(recurrent state, convolution window) per layer after ``ids``, from HF's cache (the API
    of transformers 5, or the MambaCache of 4.x)."""
    out = hf(ids, use_cache=True)
    cache = getattr(out, "cache", None) or out.cache_params
    n = hf.config.num_hidden_layers
    if hasattr(cache, "get_recurrent_state"):
        return [(cache.get_recurrent_state(i), cache.get_conv_state(i)) for i in range(n)]
    return [(cache.ssm_states[i], cache.conv_states[i]) for i in range(n)]


def token_ids(vocab: int = VOCAB) -> torch.Tensor:
    return torch.randint(0, vocab, (2, 37), generator=torch.Generator().manual_seed(3))
