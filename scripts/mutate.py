"""Mutation score of the pure engines: how many small faults in ``resilience/core/*.py`` the tests catch.

    .venv/bin/python scripts/mutate.py                 # every core module (a few minutes)
    .venv/bin/python scripts/mutate.py windows gcra    # only these modules
    .venv/bin/python scripts/mutate.py --list gcra     # print the mutants, run nothing

Each mutant is one small change to one module, made with the ``ast`` module: a comparison flipped
(``<`` ↔ ``<=``, ``==`` ↔ ``!=``, ``is`` ↔ ``is not``, ``in`` ↔ ``not in``), an arithmetic operator
swapped (``+`` ↔ ``-``, ``*`` ↔ ``/``, ...), ``and`` ↔ ``or``, ``not``/unary minus removed, ``True``
↔ ``False``, a number plus one, ``min`` ↔ ``max``, ``any`` ↔ ``all``, or a statement deleted (a call
such as ``x.clear()``, an assignment to an attribute or item, a ``raise``, ``break``, ``continue``).
Docstrings, strings, annotations, decorators, ``assert`` and ``if TYPE_CHECKING`` blocks are left alone.

Nothing is ever written under the repository: the tree is copied to a temporary directory once per
worker, each mutant is written into that copy, the tests run there (``-x``, the mutated module's own
tests first, a per-mutant timeout), and the original is put back. A mutant is *killed* when a test
fails or collection errors, *timeout* when the run exceeds its bound (counted as caught), otherwise it
*survived*. Mutants listed in ``EQUIVALENT`` (no test can tell them from the original) are reported
separately and left out of the score. Not part of the test suite or CI: run it by hand.

Ctrl-C (SIGINT) or SIGTERM stops it: the running pytest workers (each in its own session, so the
terminal's signal never reaches them) are killed with their process groups, the temporary copies are
removed, the mutants finished so far are reported, and the exit status is 128 + the signal number.
"""

from __future__ import annotations

import argparse
import ast
import copy
import dataclasses
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = Path("resilience/core")
COPIED = ("resilience", "tests", "project", "setup.cfg", "pyproject.toml", "manage.py")
IGNORED = shutil.ignore_patterns("__pycache__", ".hypothesis", ".mypy_cache", "*.pyc")

# The fast, service-light tests that exercise the core engines (no Postgres: workers run in parallel).
SUITE = (
    "tests/core",
    "tests/storage/memory/test_ratelimit_eviction.py",
    "tests/storage/test_ratelimit_engines.py",
)
# Run first for a mutant of this module: most mutants then die within a second.
FIRST = {
    "backoff": ["tests/core/test_backoff_and_budget.py", "tests/core/test_retry.py"],
    "breaker": ["tests/core/test_breaker.py", "tests/core/test_breaker_generators.py"],
    "breaker_config": ["tests/core/test_breaker_config.py", "tests/core/test_breaker.py"],
    "breaker_generators": ["tests/core/test_breaker_generators.py"],
    "breaker_state": [
        "tests/core/test_breaker_state.py",
        "tests/core/test_breaker_state_machine.py",
        "tests/core/test_breaker.py",
    ],
    "budget": ["tests/core/test_backoff_and_budget.py", "tests/core/test_retry.py"],
    "bulkhead": ["tests/core/test_bulkhead.py"],
    "client_ip": ["tests/core/test_client_ip.py", "tests/ratelimit/test_admission.py"],
    "clock": ["tests/core/test_clock.py", "tests/core/test_breaker.py"],
    "deadline": ["tests/core/test_deadline.py", "tests/core/test_deadline_context.py", "tests/core/test_retry.py"],
    "fallback": ["tests/core/test_fallback_chain.py"],
    "gcra": ["tests/core/test_gcra.py", "tests/storage/test_ratelimit_engines.py"],
    "retry": ["tests/core/test_retry.py"],
    "timeout_header": ["tests/core/test_timeout_header.py"],
    "validation": ["tests/core/test_breaker_config.py"],
    "windows": ["tests/core/test_windows.py", "tests/core/test_breaker.py"],
    "wrapping": ["tests/core/test_breaker_generators.py", "tests/core/test_retry.py", "tests/core/test_breaker.py"],
}

# (module, function, mutation) -> why no test can tell the mutant from the original.
EQUIVALENT: dict[tuple[str, str, str], str] = {
    ("backoff", "Composable.__post_init__", "`0.0` -> `1.0`"):
        "the value read for a field a strategy does not have (Sum): any number in range passes alike",
    ("budget", "LocalRetryBudget.__init__", "`1` -> `2`"):
        "a head of -2 instead of -1: the same for every clock reading >= 0 (as TimeWindow's)",
    ("budget", "LocalRetryBudget._advance", "`second - self.window + 1` -> `second - self.window - 1`"):
        "only chosen when the jump clears the whole window; the two extra steps clear buckets already cleared",
    ("client_ip", "parse_ip", "`1` -> `2` #3"): "split(':', 2)[0] is split(':', 1)[0]: only the first piece is read",
    ("client_ip", "parse_ip", "`1` -> `2` #4"): "split('%', 2)[0] is split('%', 1)[0]: only the first piece is read",
    ("deadline", "deadline.__enter__", "`at < outer` -> `at <= outer`"): "at == outer: either one is the same end",
    ("gcra", "Limit", "`0` -> `1`"): "the default wire is never read: __post_init__ derives it, trusted() is given it",
    ("gcra", "Limit", "`0` -> `1` #2"): "the same default wire",
    ("gcra", "state", "`tat < now` -> `tat <= now`"): "at tat == now, now and tat are the same value",
    ("breaker", "CircuitBreaker._count", "`c.slow_call is not None and slows * 100 >= c.slow_rate * calls` -> "
     "`c.slow_call is not None or slows * 100 >= c.slow_rate * calls`"):
        "without slow_call no call is slow: 0 >= slow_rate * calls is false either way",
    ("breaker", "CircuitBreaker._trip", "`-1` -> `1`"):
        "a spent window's mark: generations are store-clock (wall) microseconds, never 1",
    ("breaker", "CircuitBreaker._trip", "`1` -> `2`"): "the same mark as -2: no generation is negative",
    ("breaker", "CircuitBreaker.call", "`0.0` -> `1.0`"):
        "the hot path's ticket start: read only for slow_call and timeout, which the hot path runs without",
    ("breaker", "CircuitBreaker.__aexit__", "`0.0` -> `1.0`"):
        "a block only has a timer when timeout is set, so `timeout or 0.0` never reaches the 0.0",
    ("breaker", "CircuitBreaker._permit_ttl", "`0.0` -> `1.0`"): "an unset timeout as 1.0: the max() has a 1.0 floor anyway",
    ("breaker", "CircuitBreaker._permit_ttl", "`0.0` -> `1.0` #2"): "an unset slow_call as 1.0: the same 1.0 floor",
    ("breaker", "CircuitBreaker._reject", "`0.0` -> `1.0`"):
        "retry_after is None only when forced open (handled before) and never 0.0: the store answers at least 0.001",
    ("breaker_generators", "GeneratorCall.__init__", "`self._ticket: Ticket | None = None` -> `pass`"):
        "never read before start() sets it: a refused start() ends the iteration before any other step",
    ("breaker_generators", "GeneratorCall.__init__", "`self._paused = 0.0` -> `pass`"):
        "never read before pause() sets it: resume() only ever follows a pause()",
    ("breaker_generators", "GeneratorCall.__init__", "`0.0` -> `1.0`"): "the same value pause() always overwrites",
    ("breaker_state", "StateRecord.fresh", "`1` -> `2`"):
        "after=-2 instead of -1: max(after + 1, clock µs) is the clock's either way for a clock >= 0",
    ("breaker_state", "StateRecord.acquire", "`now + 1.0` -> `now - 1.0`"):
        "min()'s default: no live permit while rejecting means half_open_ok >= half_open_calls, which already closed",
    ("breaker_state", "StateRecord.acquire", "`1.0` -> `2.0`"): "the same unreachable default",
    ("retry", "Retrying.call", "`0.0` -> `1.0`"): "the start time without max_time: only the max_time check reads it",
    ("retry", "Retrying.acall", "`0.0` -> `1.0`"): "the same unread start time",
    ("windows", "CountWindow.__init__", "`0` -> `1`"):
        "the ring starts at slot 1 of an all-empty ring: a rotation no count can see",
    ("windows", "TimeWindow.__init__", "`1` -> `2`"): "a head of -2 instead of -1: the same for every clock reading >= 0",
    ("windows", "TimeWindow._advance", "`second <= head` -> `second < head`"):
        "at second == head the eviction loop is empty and head stays: the same",
    ("windows", "TimeWindow._advance", "`second - size + 1` -> `second - size - 1`"):
        "only chosen when the jump clears the whole window; the two extra steps clear buckets already cleared",
    ("windows", "TimeWindow.record", "`second > self._head` -> `second >= self._head`"):
        "at equality _advance returns at once and the call lands in the same bucket",
}  # fmt: skip

PLUGIN = """
from hypothesis import Phase, settings
settings.register_profile(
    "mutation", derandomize=True, database=None, deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking: a failure is all we need
)
"""

COMPARE = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In,
}  # fmt: skip
ARITHMETIC = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult, ast.LShift: ast.RShift, ast.RShift: ast.LShift,
    ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd,
}  # fmt: skip
SWAPPED_CALLS = {"min": "max", "max": "min", "any": "all", "all": "any"}


@dataclass(frozen=True)
class Mutant:
    module: str  # "windows"
    function: str  # "TimeWindow._advance", or "<module>"
    line: int
    start: tuple[int, int]  # (line, byte column) of the replaced source
    end: tuple[int, int]
    replacement: str
    description: str  # "`second <= head` -> `second < head`", "#2" added for the second one in the function

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.module, self.function, self.description)

    def apply(self, source: str) -> str:
        data = source.encode()
        lines = data.splitlines(keepends=True)
        offset = lambda pos: sum(len(line) for line in lines[: pos[0] - 1]) + pos[1]  # noqa: E731
        return (data[: offset(self.start)] + self.replacement.encode() + data[offset(self.end) :]).decode()


def _short(text: str, limit: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class MutantFinder(ast.NodeVisitor):
    """Walks one module and proposes every mutant, skipping what cannot be a behaviour."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.scope: list[str] = []
        self.depth = 0  # > 0 inside a function or class body
        self.mutants: list[Mutant] = []

    # -- bookkeeping ---------------------------------------------------------------------------
    def _add(self, node: ast.AST, replacement: str, before: str, after: str) -> None:
        self.mutants.append(
            Mutant(
                self.module,
                ".".join(self.scope) or "<module>",
                node.lineno,  # type: ignore[attr-defined]
                (node.lineno, node.col_offset),  # type: ignore[attr-defined]
                (node.end_lineno, node.end_col_offset),  # type: ignore[attr-defined]
                replacement,
                f"`{_short(before)}` -> `{_short(after)}`",
            )
        )

    def _expr(self, node: ast.expr, mutated: ast.expr) -> None:
        before, after = ast.unparse(node), ast.unparse(mutated)
        self._add(node, f"({after})", before, after)

    def _delete(self, node: ast.stmt) -> None:
        self._add(node, "pass", ast.unparse(node), "pass")

    def _body(self, statements: list[ast.stmt]) -> None:
        for i, statement in enumerate(statements):
            if i == 0 and isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
                continue  # docstring
            self.visit(statement)

    # -- scopes and what is never mutated ------------------------------------------------------
    def _scoped(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.depth += 1
        if not isinstance(node, ast.ClassDef):
            for default in [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]:
                self.visit(default)
        self._body(node.body)
        self.depth -= 1
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def visit_Module(self, node: ast.Module) -> None:
        self._body(node.body)

    def visit_If(self, node: ast.If) -> None:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return
        self.generic_visit(node)

    def visit_Assert(self, node: ast.Assert) -> None:
        return

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        return  # f-string: messages, and positions inside it are not reliable before Python 3.12

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        if isinstance(node.target, (ast.Attribute, ast.Subscript)) and node.value is not None:
            self._delete(node)

    # -- statements ----------------------------------------------------------------------------
    def visit_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, (ast.Call, ast.Await)):
            self._delete(node)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        if any(isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets):
            return
        if self.depth and all(isinstance(t, (ast.Attribute, ast.Subscript)) for t in node.targets):
            self._delete(node)
        self.visit(node.value)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        swapped = ARITHMETIC.get(type(node.op))
        if swapped is not None:
            mutated = copy.deepcopy(node)
            mutated.op = swapped()
            self._add(node, ast.unparse(mutated), ast.unparse(node), ast.unparse(mutated))
        else:
            self._delete(node)
        self.visit(node.value)

    def visit_Raise(self, node: ast.Raise) -> None:
        self._delete(node)

    def visit_Break(self, node: ast.Break) -> None:
        self._delete(node)

    def visit_Continue(self, node: ast.Continue) -> None:
        self._delete(node)

    # -- expressions ---------------------------------------------------------------------------
    def visit_Compare(self, node: ast.Compare) -> None:
        for i, op in enumerate(node.ops):
            swapped = COMPARE.get(type(op))
            if swapped is not None:
                mutated = copy.deepcopy(node)
                mutated.ops[i] = swapped()
                self._expr(node, mutated)
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        swapped = ARITHMETIC.get(type(node.op))
        type_union = isinstance(node.op, (ast.BitOr, ast.BitAnd)) and not self.depth
        if swapped is not None and not type_union:
            mutated = copy.deepcopy(node)
            mutated.op = swapped()
            self._expr(node, mutated)
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        mutated = copy.deepcopy(node)
        mutated.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        self._expr(node, mutated)
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, (ast.Not, ast.USub)):
            self._expr(node, node.operand)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bool):
            self._expr(node, ast.Constant(not value))
        elif isinstance(value, (int, float)):
            self._expr(node, ast.Constant(value + 1))

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id in SWAPPED_CALLS:
            mutated = copy.deepcopy(node)
            mutated.func = ast.Name(SWAPPED_CALLS[node.func.id], ast.Load())
            self._expr(node, mutated)
        self.generic_visit(node)

    def visit_arg(self, node: ast.arg) -> None:
        return  # annotations


def mutants_of(module: str) -> list[Mutant]:
    source = (ROOT / CORE / f"{module}.py").read_text()
    finder = MutantFinder(module)
    finder.visit(ast.parse(source))
    seen: dict[tuple[str, str, str], int] = {}
    mutants = []
    for m in sorted(finder.mutants, key=lambda m: (m.start, m.end)):
        ast.parse(m.apply(source))  # every mutant must still be valid Python
        n = seen[m.key] = seen.get(m.key, 0) + 1
        mutants.append(m if n == 1 else dataclasses.replace(m, description=f"{m.description} #{n}"))
    return mutants


# -- running ---------------------------------------------------------------------------------------
def suite_files(workdir: Path) -> list[str]:
    files: list[str] = []
    for entry in SUITE:
        path = workdir / entry
        found = sorted(path.rglob("test_*.py")) if path.is_dir() else [path]
        files += [str(p.relative_to(workdir)) for p in found if p.exists()]
    return files


def ordered(module: str, files: list[str]) -> list[str]:
    first = [f for f in FIRST.get(module, []) if f in files]
    return first + [f for f in files if f not in first]


def make_copy(target: Path) -> Path:
    target.mkdir(parents=True)
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, target / name, ignore=IGNORED)
        elif src.exists():
            shutil.copy2(src, target / name)
    (target / "_mutation_plugin.py").write_text(PLUGIN)
    return target


PRELOADED = ("pytest", "pytest_django", "pytest_timeout", "hypothesis", "django", "django.test", "rest_framework",
             "redis", "django_redis", "selenium.webdriver")  # fmt: skip


def preload() -> None:
    """Import the heavy third-party packages once; each forked test run then starts in a fraction of a second.
    Nothing of ``resilience`` or ``tests`` is imported here: every run imports its own (mutated) copy."""
    import importlib

    for name in PRELOADED:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


class Interrupted(Exception):
    """Raised in the main loop by SIGINT or SIGTERM."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
CHILDREN: set[int] = set()  # forked pytest runs not yet reaped; each leads its own process group


def _on_stop_signal(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def kill_run(pid: int) -> None:
    """Kill one forked run with everything it started, and reap it."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:  # forked but not yet its own group leader
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    CHILDREN.discard(pid)


def kill_all_runs() -> None:
    for pid in list(CHILDREN):
        kill_run(pid)


@dataclass
class Run:
    """One forked pytest run in a worker's copy of the tree."""

    pid: int
    worker: int
    mutant: Mutant | None
    started: float
    log: Path


def start_run(workdir: Path, files: list[str], worker: int, mutant: Mutant | None, timeout: float) -> Run:
    log = workdir / "_mutation.log"
    args = [*files, "-x", "-q", "--no-header", "-p", "no:randomly", "-p", "_mutation_plugin",
            "--hypothesis-profile=mutation", "--timeout", str(int(timeout) + 1)]  # fmt: skip
    sys.stdout.flush()
    sys.stderr.flush()
    # No stop signal between the fork and the parent's note of the child (it would leak the child),
    # nor in the child before its own handlers are back to the defaults.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    pid = os.fork()
    if pid:
        CHILDREN.add(pid)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    else:  # the child: run pytest on this copy, never return
        code = 99
        try:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            os.setsid()
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.chdir(workdir)
            sys.path.insert(0, str(workdir))
            os.environ["TEST_PG_NAME"] = f"resilience_mut_w{worker}"
            import pytest

            code = int(pytest.main(args))
        finally:
            os._exit(code)
    return Run(pid, worker, mutant, time.monotonic(), log)


def log_tail(run: Run, lines: int = 20) -> str:
    try:
        return "\n".join(run.log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def run_all(
    workdirs: list[Path],
    files: list[str],
    mutants: list[Mutant],
    timeout: float,
    verbose: bool,
    results: dict[Mutant, str],
) -> None:
    """Every mutant through the tests, ``len(workdirs)`` at a time; fills killed/timeout/survived per mutant
    into ``results`` as they finish (an interruption keeps what was finished)."""
    pending = list(reversed(mutants))
    free = list(range(len(workdirs)))
    running: dict[int, tuple[Run, str]] = {}
    while pending or running:
        while pending and free:
            worker, m = free.pop(), pending.pop()
            path = workdirs[worker] / CORE / f"{m.module}.py"
            original = path.read_text()
            path.write_text(m.apply(original))
            run = start_run(workdirs[worker], ordered(m.module, files), worker, m, timeout)
            running[run.pid] = (run, original)
        pid, status = os.waitpid(-1, os.WNOHANG)
        finished: list[tuple[int, str]] = []
        if pid:
            CHILDREN.discard(pid)
            finished.append((pid, "survived" if os.waitstatus_to_exitcode(status) == 0 else "killed"))
        now = time.monotonic()
        for other, (run, _) in list(running.items()):
            if other != pid and now - run.started > timeout:
                kill_run(other)
                finished.append((other, "timeout"))
        if not finished:
            time.sleep(0.01)
        for done, result in finished:
            run, original = running.pop(done)
            assert run.mutant is not None
            (workdirs[run.worker] / CORE / f"{run.mutant.module}.py").write_text(original)
            free.append(run.worker)
            results[run.mutant] = result
            m = run.mutant
            if verbose or result == "survived":
                took = now - run.started
                print(f"  {result:8} {m.module}.py:{m.line} {m.function}: {m.description} ({took:.1f} s)", flush=True)
            elif len(results) % 50 == 0:
                print(f"  ... {len(results)}/{len(mutants)}", flush=True)


def baseline(workdir: Path, files: list[str]) -> tuple[bool, float, str]:
    run = start_run(workdir, files, 0, None, 600)
    _, status = os.waitpid(run.pid, 0)
    CHILDREN.discard(run.pid)
    return os.waitstatus_to_exitcode(status) == 0, time.monotonic() - run.started, log_tail(run)


def run(modules: list[str], jobs: int, verbose: bool) -> int:
    all_mutants = [m for module in modules for m in mutants_of(module)]
    equivalent = [m for m in all_mutants if m.key in EQUIVALENT]
    todo = [m for m in all_mutants if m.key not in EQUIVALENT]
    print(f"{len(all_mutants)} mutants in {len(modules)} modules ({len(equivalent)} listed as equivalent, not run)", flush=True)
    sys.dont_write_bytecode = True  # a mutant and its original may share size and mtime: never reuse bytecode
    os.environ["PYTHONHASHSEED"] = "0"
    previous = {signum: signal.signal(signum, _on_stop_signal) for signum in STOP_SIGNALS}
    results: dict[Mutant, str] = {}
    base: Path | None = None
    try:
        preload()
        base = Path(tempfile.mkdtemp(prefix="mutate-work-"))
        workdirs = [make_copy(base / f"w{i}") for i in range(jobs)]
        files = suite_files(workdirs[0])
        passed, seconds, tail = baseline(workdirs[0], files)
        if not passed:
            print(f"the unmutated tests do not pass; fix that first:\n{tail}")
            return 2
        timeout = 3 * seconds + 10
        print(f"baseline: {len(files)} test files pass in {seconds:.1f} s; per-mutant timeout {timeout:.0f} s", flush=True)
        started = time.monotonic()
        run_all(workdirs, files, todo, timeout, verbose, results)
        print(f"{len(todo)} mutants in {time.monotonic() - started:.0f} s with {jobs} workers", flush=True)
    except Interrupted as stop:
        # Handlers stay installed until the workers are gone: a second Ctrl-C cannot leave one behind.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        kill_all_runs()
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)
        print(f"\n{stop}: stopped after {len(results)} of {len(todo)} mutants; workers killed, {base} removed", flush=True)
        report(modules, [m for m in todo if m in results], equivalent, results)
        return 128 + stop.signum
    finally:
        kill_all_runs()
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    report(modules, todo, equivalent, results)
    return 0


def report(modules: list[str], todo: list[Mutant], equivalent: list[Mutant], results: dict[Mutant, str]) -> None:
    header = f"{'module':22} {'mutants':>7} {'equiv':>5} {'killed':>6} {'timeout':>7} {'survived':>8} {'score':>7}"
    print("\n" + header + "\n" + "-" * len(header))
    totals = [0, 0, 0, 0, 0]
    for module in modules:
        mine = [m for m in todo if m.module == module]
        equiv = sum(1 for m in equivalent if m.module == module)
        counts = [sum(1 for m in mine if results.get(m) == r) for r in ("killed", "timeout", "survived")]
        row = [len(mine) + equiv, equiv, *counts]
        totals = [a + b for a, b in zip(totals, row, strict=True)]
        print(_row(module, row))
    print("-" * len(header) + "\n" + _row("core (all)", totals))
    survivors = sorted((m for m in todo if results.get(m) == "survived"), key=lambda m: (m.module, m.line))
    if survivors:
        print(f"\nsurvivors ({len(survivors)}):")
        for m in survivors:
            print(f"  {m.module}.py:{m.line} {m.function}: {m.description}")
    if equivalent:
        print(f"\nequivalent, left out of the score ({len(equivalent)}):")
        for m in sorted(equivalent, key=lambda m: (m.module, m.line)):
            print(f"  {m.module}.py:{m.line} {m.function}: {m.description} -- {EQUIVALENT[m.key]}")


def _row(name: str, row: list[int]) -> str:
    total, equiv, killed, timeout, survived = row
    scored = total - equiv
    score = f"{100 * (killed + timeout) / scored:6.1f}%" if scored else "     -"
    return f"{name:22} {total:7} {equiv:5} {killed:6} {timeout:7} {survived:8} {score:>7}"


def core_modules() -> Iterator[str]:
    for path in sorted((ROOT / CORE).glob("*.py")):
        if path.stem != "__init__":
            yield path.stem


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="core module names (default: all of resilience/core)")
    parser.add_argument("--jobs", type=int, default=max(1, min(4, (os.cpu_count() or 2))), help="parallel workers")
    parser.add_argument("--list", action="store_true", help="print the mutants and stop")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every mutant's result")
    args = parser.parse_args()
    known = list(core_modules())
    modules = args.modules or known
    unknown = sorted(set(modules) - set(known))
    if unknown:
        parser.error(f"not a core module: {', '.join(unknown)} (known: {', '.join(known)})")
    if args.list:
        for m in (m for module in modules for m in mutants_of(module)):
            flag = "  [equivalent]" if m.key in EQUIVALENT else ""
            print(f"{m.module}.py:{m.line} {m.function}: {m.description}{flag}")
        return 0
    return run(modules, args.jobs, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
