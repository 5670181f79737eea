"""Blocks described in words ("a gated attention block with 8 heads"): the LLM writes the class, and
it is used only after the same gates as codegen — it parses, its imports resolve, it holds no
credential — and a forward pass on the block's real input shape (in a child process) returns a
finite tensor with the batch size kept. Each failure goes into the next attempt; when the attempts
are spent the layer list is rejected with the last reason."""

from __future__ import annotations

from typing import Any

from orchestrator.errors import MltrainerError, SpecError, TrainingError

MAX_BLOCK_ATTEMPTS = 3


class BlockRejected(SpecError):
    """A described block never passed the gates; the message says why."""


BLOCK_CHECK = '''
shape, dtype, known = args["in_shape"], args["dtype"], args["known"]
import inspect
try:
    accepted = inspect.signature(cls).parameters
    kwargs = {k: v for k, v in known.items() if k in accepted}
    block = cls(**kwargs)
except Exception as err:
    gate(f"building {args['class']}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) failed ({describe(err)})")
if not isinstance(block, torch.nn.Module):
    gate(f"{args['class']} is not a torch.nn.Module")
x = (torch.randint(1, max(2, args["vocab"]), (2, *shape)) if dtype == "long" else torch.randn(2, *shape))
try:
    block.train()
    out = block(x)
except Exception as err:
    gate(f"forward on an input of shape {[2, *shape]} failed ({describe(err)})")
if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
    out = out[0]
if not isinstance(out, torch.Tensor):
    gate(f"forward returned {type(out).__name__}, not a tensor")
if out.ndim == 0 or out.shape[0] != 2:
    gate(f"forward on a batch of 2 returned shape {list(out.shape)}; keep the batch dimension first")
if not torch.isfinite(out.float()).all():
    gate(f"forward on an input of shape {[2, *shape]} gave NaN or Inf")
if out.requires_grad:
    try:
        out.float().square().mean().backward()
    except Exception as err:
        gate(f"backward through the block failed ({describe(err)})")
print("RESULT " + json.dumps({"out_shape": list(out.shape[1:]),
                               "parameters": sum(p.numel() for p in block.parameters())}), flush=True)
'''


def block_known(shape: list[int]) -> dict[str, Any]:
    """Constructor arguments a block may name: the input's last dimension and its whole shape."""
    return {"dim": shape[-1], "in_features": shape[-1], "d_model": shape[-1], "embed_dim": shape[-1],
            "in_shape": list(shape), "input_shape": list(shape),
            **({"in_channels": shape[0], "channels": shape[0]} if len(shape) >= 2 else {})}


def check_block(source: str, class_name: str, shape: list[int], dtype: str, vocab: int = 2,
                known_secrets: list[str] | None = None) -> dict[str, Any]:
    """All gates; returns {"out_shape", "parameters"} or raises TrainingError with the reason."""
    from tools.lab.sandbox import CHECK_PREAMBLE, run_check, static_gates

    static_gates(source, class_name, known_secrets)
    args = {"class": class_name, "in_shape": list(shape), "dtype": dtype, "vocab": vocab, "known": block_known(shape)}
    return run_check(CHECK_PREAMBLE + BLOCK_CHECK, source, args)


def prompt(description: str, class_name: str, shape: list[int], dtype: str, failures: list[str]) -> str:
    kind = "token ids (int64)" if dtype == "long" else "float32"
    parts = [f"Block: {description}", f"Class name: {class_name}",
             f"Input: {kind} tensor of shape [batch, {', '.join(str(s) for s in shape)}]; "
             f"dim={shape[-1]}, in_shape={list(shape)}."]
    if failures:
        lines = "\n".join(f"Attempt {i} failed with: {e}" for i, e in enumerate(failures, 1))
        parts.append(f"Earlier attempts failed.\n{lines}\nDo not repeat these mistakes.")
    return "\n\n".join(parts)


def generate_block(llm: Any, description: str, class_name: str, shape: list[int], dtype: str, vocab: int = 2,
                   known_secrets: list[str] | None = None, log: Any = None) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """Ask the LLM for the block until one passes the gates: (source, check result, attempts)."""
    import prompts
    from agents.codegen import extract_code

    if llm is None:
        raise SpecError(f"The layer described as '{description}' needs an LLM to write it; set llm: in the spec, "
                        "or give the block as module_path: FILE.py:Class.")
    attempts: list[dict[str, Any]] = []
    for number in range(1, MAX_BLOCK_ATTEMPTS + 1):
        failures = [a["error"] for a in attempts]
        try:
            reply = llm.complete(prompts.load("lab_block"), [{"role": "user", "content": prompt(
                description, class_name, shape, dtype, failures)}], stage="architecture")
        except MltrainerError as err:
            attempts.append({"attempt": number, "error": f"the LLM call failed: {err}"})
            break
        source = extract_code(reply.content)
        try:
            result = check_block(source, class_name, shape, dtype, vocab, known_secrets)
        except TrainingError as err:
            attempts.append({"attempt": number, "error": str(err)})
            if log is not None:
                log(f"described block '{description}' attempt {number} rejected: {err}", "warning")
            continue
        attempts.append({"attempt": number, "error": None})
        return source, result, attempts
    reason = attempts[-1]["error"] if attempts else "no attempt was made"
    raise BlockRejected(f"The block described as '{description}' was rejected after {len(attempts)} "
                        f"attempt{'s' if len(attempts) != 1 else ''}: {reason.rstrip('.')}; describe it more "
                        "precisely or give it as module_path: FILE.py:Class.")
