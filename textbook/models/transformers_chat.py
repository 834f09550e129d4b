"""A chat model from a local folder with 🤗 transformers: its chat template, batched greedy decoding.

For a GPU worker holding weights on disk (no server to stand up); runs on CPU too, slowly. The
folder must hold a tokenizer with a chat template: without one the prompt's roles would be lost,
so that is an error rather than a silent plain-text join.
"""

from __future__ import annotations

from typing import Any, Sequence

from textbook.config import ModelSettings
from textbook.models.registry import BackendError, register


def torch_device(device: str) -> str:
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device


@register("llm", "transformers", needs=("model_dir",),
          about="a local model folder; chat template; batched; CPU or CUDA")
class TransformersChat:
    def __init__(self, cfg: ModelSettings) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.cfg = cfg
        self.device = torch_device(cfg.device)
        # Left padding: a batch's prompts end where generation starts.
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.model, local_files_only=True, padding_side="left")
        if not self.tokenizer.chat_template:
            raise BackendError(f"{cfg.model}: the tokenizer has no chat template (tokenizer_config.json)")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(cfg.model, local_files_only=True, torch_dtype="auto")
        self.model.to(self.device).eval()

    def prompts(self, conversations: Sequence[Sequence[dict[str, Any]]]) -> list[str]:
        return [self.tokenizer.apply_chat_template(list(c), tokenize=False, add_generation_prompt=True)
                for c in conversations]

    def chat(self, conversations: Sequence[Sequence[dict[str, Any]]], max_new_tokens: int | None = None) -> list[str]:
        import torch

        out: list[str] = []
        texts = self.prompts(conversations)
        for i in range(0, len(texts), self.cfg.batch_size):
            enc = self.tokenizer(texts[i:i + self.cfg.batch_size], return_tensors="pt", padding=True,
                                 add_special_tokens=False).to(self.device)
            with torch.no_grad():
                ids = self.model.generate(**enc, max_new_tokens=max_new_tokens or self.cfg.max_new_tokens,
                                          do_sample=False, pad_token_id=self.tokenizer.pad_token_id)
            out += self.tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        return out
