"""``ssmzoo generate DIR --prompt TEXT | --prompt-ids 1,2,3``: continue a prompt with a saved LM.

DIR is a directory written by ``model.save(DIR)`` or ``ssmzoo train ... --save DIR``. Text prompts
need to know how text maps to the model's token ids: the task it was trained on says so (its
``text_encoding``; the ``chars`` task's ids are UTF-8 bytes). That task is ``--task SPEC``, or the
one named in ``DIR/run.json`` (written when ``ssmzoo train --out`` names the same folder as
``--save``). Any other model takes ``--prompt-ids``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ssmzoo.errors import ConfigError

__all__ = ["register", "run", "parse_ids"]

OWNER = "generate"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "generate", help="continue a prompt with a saved language model",
        description="Continue a prompt with the language model saved in DIR (model.save(DIR) or "
                    "`ssmzoo train ... --save DIR`): the prompt runs through the model at once, "
                    "then each new token through its recurrent step. --prompt TEXT needs a model "
                    "whose tokens are text (trained on the chars task: UTF-8 bytes), known from "
                    "--task or DIR/run.json; any model takes --prompt-ids.")
    p.add_argument("dir", metavar="DIR", help="a saved language model (config.json and weights)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", metavar="TEXT",
                     help="a text prompt (for a model whose tokens are text)")
    src.add_argument("--prompt-ids", metavar="IDS", help="token ids, comma-separated: 1,2,3")
    p.add_argument("--task", metavar="SPEC", help="the task the model was trained on, for its "
                   "vocabulary (default: the task in DIR/run.json, if any)")
    p.add_argument("--n-new", type=int, default=32, metavar="N", help="tokens to add (default 32)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="softmax temperature; 0 is greedy (default 0.8)")
    p.add_argument("--top-k", type=int, default=50, metavar="K",
                   help="sample among the K most likely tokens; 0: no limit (default 50)")
    p.add_argument("--top-p", type=float, default=0.9, metavar="P",
                   help="sample from the smallest set of tokens with probability >= P (nucleus); "
                        "1: no limit (default 0.9)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling (default 0)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--json", action="store_true",
                   help="print prompt and new token ids (and text) as JSON")
    p.set_defaults(func=run)


def parse_ids(text: str, vocab_size: int) -> list[int]:
    """``"1, 2,3"`` -> ``[1, 2, 3]``; each an int in [0, vocab_size)."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ConfigError(f"{OWNER}: --prompt-ids expects comma-separated token ids such as "
                          f"1,2,3, got {text!r}")
    ids = []
    for item in items:
        try:
            value = int(item)
        except ValueError:
            raise ConfigError(f"{OWNER}: --prompt-ids expects integers, got {item!r} "
                              f"in {text!r}") from None
        if not 0 <= value < vocab_size:
            raise ConfigError(f"{OWNER}: --prompt-ids: token id {value} is out of range for "
                              f"this model's vocab_size {vocab_size} (ids in [0, {vocab_size}))")
        ids.append(value)
    return ids


def _task_spec(args: argparse.Namespace) -> tuple[str | None, str]:
    """(the task spec, where it came from) or (None, why not)."""
    if args.task:
        return args.task, "--task"
    meta = Path(args.dir) / "run.json"
    if meta.is_file():
        try:
            task = json.loads(meta.read_text())["task"]
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"{OWNER}: {str(meta)!r} names no task (is it corrupt?); give "
                              "--task SPEC") from None
        return str(task), str(meta)
    return None, f"{args.dir} has no run.json naming its task and no --task was given"


def _encoding(args: argparse.Namespace, vocab_size: int) -> tuple[str | None, str]:
    """(the text encoding of the model's ids or None, a clause saying why)."""
    task, source = _task_spec(args)
    if task is None:
        return None, source
    from ssmzoo.registry import get_registry
    from ssmzoo.spec import parse

    reg = get_registry()
    spec = reg.resolve_task(parse(task))  # a misspelt --task fails here, with the nearest name
    encoding = getattr(reg.get_task(spec.name).factory, "text_encoding", None)
    if encoding is None:
        return None, f"task {spec.name!r} (from {source}) has token ids, not text"
    if encoding != "utf-8 bytes" or vocab_size != 256:
        return None, (f"task {spec.name!r} (from {source}) encodes text as {encoding}, which "
                      f"this command cannot map onto a vocab_size of {vocab_size}")
    return encoding, f"task {spec.name!r} (from {source})"


def run(args: argparse.Namespace) -> int:
    import torch

    import ssmzoo
    from ssmzoo.models.lm import LM
    from ssmzoo.models.sampling import check_sampling
    from ssmzoo.train.loop import resolve_device

    check_sampling(OWNER, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                   n_new=args.n_new, options=True)
    device = resolve_device(args.device)
    model = ssmzoo.load(args.dir, map_location=device)
    if not isinstance(model, LM):
        raise ConfigError(f"{OWNER}: {args.dir} holds {getattr(model, 'ssmzoo_spec', '?')}, not "
                          "a language model (lm); only an lm generates tokens")
    encoding, why = _encoding(args, model.vocab_size)
    if args.prompt is not None:
        if encoding is None:
            raise ConfigError(f"{OWNER}: --prompt TEXT needs a model whose tokens are text, and "
                              f"{why}; give --prompt-ids 1,2,3 (ids in [0, {model.vocab_size}))"
                              " or --task naming the text task it was trained on")
        ids = list(args.prompt.encode("utf-8"))
        if not ids:
            raise ConfigError(f"{OWNER}: --prompt is empty; expected at least one character")
    else:
        ids = parse_ids(args.prompt_ids, model.vocab_size)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    model.eval()
    prompt = torch.tensor([ids], dtype=torch.long, device=device)               # (1, l)
    out = model.generate(prompt, args.n_new, temperature=args.temperature, top_k=args.top_k,
                         top_p=args.top_p, generator=generator)                 # (1, l + n)
    new = out[0, len(ids):].tolist()
    text = bytes(ids + new).decode("utf-8", errors="replace") if encoding else None
    if args.json:
        print(json.dumps({"prompt_ids": ids, "new_ids": new,
                          **({"text": text} if text is not None else {})}))
    elif text is not None:  # control characters shown as U+FFFD, never sent to the terminal
        print("".join(c if c.isprintable() or c in "\n\t" else "\ufffd" for c in text))
    else:
        print(",".join(str(i) for i in ids + new))
        print(f"({len(ids)} prompt ids, then {len(new)} new)", file=sys.stderr)
    return 0
