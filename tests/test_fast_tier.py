"""The fast tier agrees with the sandbox on every program it accepts: a hostile corpus, the
reference programs of every source, the noisy teacher's wrong programs and random
arithmetic. (On every program of a 1M refresh: bench/fast_tier.py.)"""

from __future__ import annotations

import json
import random

import pytest

from tasks.execute.fast import run_fast
from tasks.execute.sandbox import execute_programs
from tasks.sources import load_questions
from tasks.teachers.noisy import NoisyTeacher
from tasks.teachers.reference import reference_samples

# Programs the fast tier must hand to the sandbox (None), each for its own reason.
REFUSED = [
    "ans = 1e308 * 10",                      # overflows to inf
    "ans = 1e309",                           # an inf literal
    "ans = 1e309 - 1e309",                   # NaN
    "ans = 10 ** 10 ** 10",                  # exponent bomb
    "ans = 2 ** 100",                        # over the magnitude bound
    "ans = 1000001 ** 2",                    # base over the power bound
    "ans = 999999 ** 64",
    "ans = 123456789 * 10 ** 30",
    "ans = " + "9" * 40,                     # a literal over the bound
    "ans = (-8) ** (1 / 3)",                 # complex
    "ans = 1 / 0",
    "ans = 5 // 0.0",
    "ans = 7 % 0",
    "ans = 0 ** -1",
    "ans = True",
    "ans = 1 + True",
    "ans = None",
    "ans = 'x'",
    "ans = 1j",
    "ans = float('nan')",
    "ans = abs(-3)",
    "ans = y + 1",                           # a name not assigned yet
    "ans = ans + 1",
    "x = 1\nans = x + z",
    "a = b = 3\nans = a",
    "x, y = 1, 2\nans = x",
    "ans = 1\nans += 1",
    "ans: float = 1.5",
    "ans = 5\nprint(ans)",
    '"""doc"""\nans = 1',
    "import math\nans = math.pi",
    "ans = [1, 2]",
    "ans = 1 if 1 else 2",
    "ans = (x := 5)",
    "ans = -1 < 2",
    "x = 1",                                 # no ans
    "",
    "ans = 1\x00",
    "ans = = 1",
    "def f():\n    return 1\nans = f()",
    "for i in range(3):\n    ans = i",
    "ans = " + "-" * 50_000 + "1",           # over the length cap
    "ans = " + "+".join(["1"] * 4000),       # 4,000-deep tree
    "ans = " + "(" * 300 + "1" + ")" * 300,  # nesting the parser refuses
    "ans = " + "-" * 3000 + "1",
    "__import__('os').system('true')\nans = 1",
    "x = 1e30\nans = x * 10",
]

# Programs it must accept, with values the sandbox must reproduce bit for bit.
ACCEPTED = [
    "ans = 3 * 4 + 5", "ans = 7 / 2", "ans = 10 / 4", "ans = 0.1 + 0.2", "ans = -0.0",
    "ans = 7 % -3", "ans = -7 // 2", "ans = 4.0 // 0.5", "ans = 3 ** -2", "ans = 0 ** 0",
    "ans = 2 ** 64", "ans = 2 ** 0.5", "ans = -2 ** 2", "ans = -(2 ** 2)", "ans = +5",
    "ans = 1_000_000 * 3", "ans = 0x10", "ans = 1e-400", "ans = 1e30", "ans = 1.5e-320",
    "ans = 123456789012345678901234567890", "ans = 1; ans = 2", "ans = 2  # comment",
    "x = 1e29\nans = x / 1e20", "y = 2\nans = y ** 0.5",
    "ans = " + "(" * 150 + "1" + ")" * 150, "ans = " + "+".join(["1"] * 300),
    "__builtins__ = 1\nans = 2", "step_1 = 5829 - 5735\nans = step_1 / 5735 * 100",
]


def _key(result) -> str:  # noqa: ANN001
    # JSON keeps what == hides: -0.0 vs 0.0, 1 vs 1.0.
    return json.dumps([result.status, result.value, result.error], allow_nan=True)


def _agree(programs: list[str]) -> int:
    """Every program the fast tier accepts gives the sandbox's result; returns how many
    were accepted."""
    accepted = [(p, r) for p in programs if (r := run_fast(p)) is not None]
    sandbox = execute_programs([p for p, _ in accepted], timeout_s=5.0)
    for (program, fast), slow in zip(accepted, sandbox, strict=True):
        assert _key(fast) == _key(slow), program[:200]
    return len(accepted)


def test_hostile_programs_go_to_the_sandbox():
    assert [p[:60] for p in REFUSED if run_fast(p) is not None] == []
    # And the sandbox decides them as it always did (a few spot checks of that).
    out = execute_programs(REFUSED[10:12] + ["ans = True"], timeout_s=5.0)
    assert [r.status for r in out] == ["error", "error", "ok"] and out[2].value is True


def test_accepted_arithmetic_equals_the_sandbox():
    assert _agree(ACCEPTED) == len(ACCEPTED)


@pytest.mark.slow
def test_reference_programs_of_every_source_agree(shared_data):
    questions = [
        *load_questions("procedural", n=3000, seed=11),
        *load_questions("procedural:heldout:unanswerable=0.3", n=500, seed=3),
        *load_questions(f"gsm8k:{shared_data}/gsm8k/train.jsonl", n=1500),
        *load_questions(f"tatqa:{shared_data}/tatqa/tatqa_dataset_dev.json", n=600),
    ]
    samples, _ = reference_samples(questions)
    programs = [s.program for s in samples if s.program]
    assert len(programs) > 4000
    accepted = _agree(programs)
    # Gold programs are straight-line arithmetic, except the abstention program.
    assert accepted >= 0.9 * len(programs), (accepted, len(programs))


def test_noisy_teacher_programs_agree():
    questions = load_questions("procedural", n=800, seed=5)
    samples = NoisyTeacher(error_rate=1.0, seed=2).run(questions).kept
    assert _agree([s.program for s in samples if s.program]) > 400


@pytest.mark.parametrize("seed", [0, 1])
def test_random_arithmetic_agrees(seed):
    # Zeros, negatives, tiny and huge numbers under every operator: errors and bounds
    # decide the sandbox's way or not at all.
    rng = random.Random(seed)
    atoms = ["0", "1", "2", "-3", "0.5", "1e-300", "1e300", "7", "64", "1e6", "2.5e15"]
    ops = ["+", "-", "*", "/", "//", "%", "**"]

    def expr(depth: int, names: list[str]) -> str:
        if depth == 0 or rng.random() < 0.3:
            return rng.choice(atoms + names)
        return f"({expr(depth - 1, names)} {rng.choice(ops)} {expr(depth - 1, names)})"

    programs = []
    for _ in range(1500):
        names: list[str] = []
        lines = []
        for k in range(rng.randint(1, 4)):
            lines.append(f"v{k} = {expr(3, names)}")
            names.append(f"v{k}")
        lines.append(f"ans = {expr(2, names)}")
        programs.append("\n".join(lines))
    accepted = _agree(programs)
    assert 200 < accepted < len(programs)  # both tiers get work
