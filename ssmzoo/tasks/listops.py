"""ListOps (LRA): nested MAX / MIN / MED / SM expressions over digits; the label is the value.

The generator follows the official grammar of the Long Range Arena release (operators ``[MAX``,
``[MIN``, ``[MED`` (the integer part of the median) and ``[SM`` (the sum modulo 10); a node is a
digit with probability 0.75 below the depth limit, else an operator over 2..max_args arguments;
trees are kept when their length in tokens lies strictly between min_length and max_length), and
writes the official TSV format (``Source\tTarget``, expressions with round brackets), so that
generated files and the released ``basic_{train,val,test}.tsv`` go through the same loader.
"""

from __future__ import annotations

import csv
import random
import statistics
from pathlib import Path

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
END = "]"
VALUE_P = 0.25  # probability of an operator node below the depth limit (the release's VALUE_P)
# token ids: 0 pad, 1 unknown, then the operators, the closing bracket and the digits
VOCAB = ("<pad>", "<unk>", *OPERATORS, END, *(str(d) for d in range(10)))
TOKEN_ID = {t: i for i, t in enumerate(VOCAB)}

Tree = int | tuple[str, list["Tree"]]  # a digit, or (operator, arguments)

__all__ = ["generate_tree", "to_string", "evaluate", "tokenize", "generate", "write_tsv",
           "read_tsv", "VOCAB", "TOKEN_ID", "OPERATORS"]


def generate_tree(rng: random.Random, depth: int, max_depth: int, max_args: int) -> tuple[Tree, int]:
    """A random expression and its length in tokens (operators, digits and closing brackets)."""
    if depth >= max_depth or rng.random() > VALUE_P:
        return rng.randrange(10), 1
    args, length = [], 2  # the operator and its closing bracket
    for _ in range(rng.randint(2, max_args)):
        sub, n = generate_tree(rng, depth + 1, max_depth, max_args)
        args.append(sub)
        length += n
    return (rng.choice(OPERATORS), args), length


def evaluate(tree: Tree) -> int:
    """The value of an expression (0..9)."""
    if isinstance(tree, int):
        return tree
    op, args = tree
    values = [evaluate(a) for a in args]
    if op == "[MAX":
        return max(values)
    if op == "[MIN":
        return min(values)
    if op == "[MED":
        return int(statistics.median(values))
    return sum(values) % 10


def to_string(tree: Tree) -> str:
    """The release's text form: each operator application opens a bracket per argument."""
    if isinstance(tree, int):
        return str(tree)
    op, args = tree
    text = f"( {op} {to_string(args[0])} )"
    for a in args[1:]:
        text = f"( {text} {to_string(a)} )"
    return f"( {text} {END} )"


def tokenize(source: str) -> list[int]:
    """Token ids of a source string: round brackets dropped, as the LRA models read it."""
    return [TOKEN_ID.get(t, 1) for t in source.replace("(", " ").replace(")", " ").split()]


def generate(n: int, *, seed: int, max_depth: int = 10, max_args: int = 10, min_length: int = 500,
             max_length: int = 2000) -> list[tuple[str, int]]:
    """``n`` distinct (source, value) pairs, lengths strictly inside (min_length, max_length)."""
    if min_length + 1 >= max_length:
        raise ValueError(f"listops: min_length {min_length} must be below max_length - 1 "
                         f"({max_length - 1})")
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[tuple[str, int]] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 1000 * n + 10000:
            raise ValueError(f"listops: found only {len(out)} of {n} trees with length in "
                             f"({min_length}, {max_length}) at max_depth {max_depth}, max_args "
                             f"{max_args}; widen the limits")
        tree, length = generate_tree(rng, 1, max_depth, max_args)
        if min_length < length < max_length:
            text = to_string(tree)
            if text not in seen:
                seen.add(text)
                out.append((text, evaluate(tree)))
    return out


def write_tsv(path: str | Path, rows: list[tuple[str, int]]) -> None:
    """Write rows in the release's format (header ``Source``, ``Target``; tab-separated)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["Source", "Target"])
        w.writerows(rows)


def read_tsv(path: str | Path) -> list[tuple[str, int]]:
    """Rows of a release TSV file (the header is skipped)."""
    from ssmzoo.errors import DataError

    rows = []
    with open(path, newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["Source", "Target"]:
            raise DataError(f"listops: {str(path)!r} should start with the header "
                            f"'Source<TAB>Target', found {header!r}")
        for i, row in enumerate(reader, start=2):
            try:
                rows.append((row[0], int(row[1])))
            except (IndexError, ValueError):
                raise DataError(f"listops: {path}:{i}: expected 'SOURCE<TAB>DIGIT', got "
                                f"{row!r}") from None
    return rows
