"""Pretrain a tiny GPT-2 on examples/data/corpus.txt, so LoRA fine-tuning has an offline base model.

`python examples/make_tiny_base.py` (about a minute on a laptop CPU) writes examples/out/tiny-base
(config, safetensors weights, a byte-level BPE tokenizer) — a real pretrained causal LM, only small.
`examples/instructions_lora_offline.yaml` then fine-tunes it with LoRA, no network needed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "out" / "tiny-base"), help="folder for the model")
    parser.add_argument("--steps", type=int, default=300, help="pretraining steps")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args()

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    text = (HERE / "data" / "corpus.txt").read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(lines, trainers.BpeTrainer(
        vocab_size=512, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                   unk_token="<|endoftext|>")
    torch.manual_seed(args.seed)
    config = GPT2Config(vocab_size=len(fast), n_positions=256, n_embd=96, n_layer=3, n_head=4,
                        bos_token_id=fast.eos_token_id, eos_token_id=fast.eos_token_id)
    model = GPT2LMHeadModel(config)
    ids = torch.tensor(fast(text)["input_ids"])
    block, batch = 64, 16
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    model.train()
    for step in range(1, args.steps + 1):
        starts = torch.randint(0, len(ids) - block - 1, (batch,))
        x = torch.stack([ids[s:s + block] for s in starts])
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == 1:
            print(f"step {step}/{args.steps}: loss {loss.item():.3f}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    fast.save_pretrained(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
