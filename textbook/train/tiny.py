"""Tiny random LLaVA, Idefics3, Llama chat and CLIP models built from configs, with a BPE tokenizer trained here.

For CI and smoke runs. Nothing is downloaded: the tokenizer is trained with ``tokenizers`` on the
texts it is given, the vision tower is a 32 px CLIP (LLaVA: 16 image tokens per image) or SigLIP-like
Idefics3 tower (4 tokens after pixel shuffle), the language model a two-layer Llama. The weights
are random: a run on it tests the plumbing, never a model's quality.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

IMAGE_TOKEN = "<image>"
PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
IDEFICS3_SPECIALS = ("<fake_token_around_image>", "<global-img>", "<end_of_utterance>")
IMAGE_SIZE, PATCH = 32, 8


def train_tokenizer(texts: Iterable[str], extra_special: Iterable[str] = (), vocab_size: int = 400):
    """A byte-level BPE ``PreTrainedTokenizerFast`` with pad/bos/eos/unk, ``<image>`` and ``extra_special``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [PAD, BOS, EOS, UNK, IMAGE_TOKEN, *extra_special]
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts) or ["a"], trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS,
                                   unk_token=UNK, extra_special_tokens={"image_token": IMAGE_TOKEN})
    fast.add_special_tokens({"extra_special_tokens": [IMAGE_TOKEN, *extra_special]})
    return fast


def _text_config(tokenizer):  # noqa: ANN202 - LlamaConfig
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                       pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id)


# A minimal chat template: the transformers chat backend refuses a tokenizer without one.
CHAT_TEMPLATE = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>\n{% endfor %}"
                 "{% if add_generation_prompt %}<s>assistant:{% endif %}")


# The same for a VLM: an image part becomes the processor's image token.
VLM_CHAT_TEMPLATE = ("{% for m in messages %}<s>{{ m['role'] }}: {% if m['content'] is string %}"
                     "{{ m['content'] }}{% else %}{% for p in m['content'] %}{% if p['type'] == 'image' %}<image>"
                     "{% else %}{{ p['text'] }}{% endif %}{% endfor %}{% endif %}</s>\n{% endfor %}"
                     "{% if add_generation_prompt %}<s>assistant:{% endif %}")


def build_tiny_llm(out: Path, texts: Iterable[str], seed: int = 0) -> Path:
    """Save a tiny random LlamaForCausalLM and its tokenizer, with ``CHAT_TEMPLATE``, into ``out``."""
    import torch
    from transformers import LlamaForCausalLM

    tokenizer = train_tokenizer(texts)
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    model = LlamaForCausalLM(_text_config(tokenizer))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_tiny_idefics3(out: Path, texts: Iterable[str], extra_special: Iterable[str] = (), seed: int = 0) -> Path:
    """Save a tiny random Idefics3ForConditionalGeneration and its processor (no image splitting)."""
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessorPil, \
        Idefics3Processor
    from transformers.models.idefics3.configuration_idefics3 import Idefics3VisionConfig

    tokenizer = train_tokenizer(texts, [*IDEFICS3_SPECIALS, *extra_special])
    vision = Idefics3VisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                  image_size=IMAGE_SIZE, patch_size=PATCH)
    config = Idefics3Config(vision_config=vision, text_config=_text_config(tokenizer), scale_factor=2,
                            image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config)
    images = Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": IMAGE_SIZE},
                                       max_image_size={"longest_edge": IMAGE_SIZE})
    processor = Idefics3Processor(image_processor=images, tokenizer=tokenizer,
                                  image_seq_len=(IMAGE_SIZE // PATCH // 2) ** 2)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_tiny(family: str, out: Path, texts: Iterable[str], extra_special: Iterable[str] = (), seed: int = 0) -> Path:
    builders = {"llava": build_tiny_llava, "idefics3": build_tiny_idefics3}
    if family not in builders:
        raise ValueError(f"no tiny model for family {family!r} (have: {', '.join(builders)})")
    return builders[family](out, texts, extra_special, seed)


def build_tiny_llava(out: Path, texts: Iterable[str], extra_special: Iterable[str] = (), seed: int = 0) -> Path:
    """Save a tiny random LlavaForConditionalGeneration and its LlavaProcessor into ``out``."""
    import torch
    from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration,
                              LlavaProcessor)

    tokenizer = train_tokenizer(texts, extra_special)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=IMAGE_SIZE, patch_size=PATCH, projection_dim=32)
    config = LlavaConfig(vision_config=vision, text_config=_text_config(tokenizer),
                         image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
                         image_seq_length=(IMAGE_SIZE // PATCH) ** 2, vision_feature_select_strategy="default",
                         vision_feature_layer=-1)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    images = CLIPImageProcessorPil(size={"shortest_edge": IMAGE_SIZE},
                                   crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    processor = LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=PATCH,
                               vision_feature_select_strategy="default", image_token=IMAGE_TOKEN,
                               num_additional_image_tokens=1, chat_template=VLM_CHAT_TEMPLATE)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_tiny_clip(out: Path, seed: int = 0) -> Path:
    """Save a tiny random ``CLIPModel`` (32 px images) and its PIL image processor into ``out``: the
    folder shape of a real CLIP checkpoint, for InSI-SIM's CLIP term (textbook/insi_sim.py)."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    config = CLIPConfig(
        text_config={"vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 16, "pad_token_id": 1, "bos_token_id": 0,
                     "eos_token_id": 2},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": IMAGE_SIZE, "patch_size": PATCH},
        projection_dim=16)
    torch.manual_seed(seed)
    model = CLIPModel(config)
    images = CLIPImageProcessorPil(size={"shortest_edge": IMAGE_SIZE},
                                   crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    images.save_pretrained(out)
    return out
