"""Every command line in README.md's ```bash blocks, run as written in sim (issue 14).

The README is parsed, never copied: each non-blank, non-comment line of a bash block
(``\\`` continuations joined, trailing ``# comments`` stripped) is one command, and it must
match exactly one entry of ``COMMANDS`` below, so a command added to the README without an
entry fails ``test_every_readme_command_has_an_entry`` with a message saying what to add.

All blocks run in one test, their commands in README order in one fresh working directory
(``runs/`` and ``data/`` land there, as for a user in a fresh clone), so outputs chain:
``record`` -> ``train-bc`` -> ``learner`` + ``actor`` started together -> ``eval`` ->
``show``/``dataset`` on the recorded demos.
Per command the table holds only what a user on this CPU box would change:

- ``budget``: small-budget overrides (a key already on the line is replaced, else appended);
- ``hardware``: a line naming real hardware (``robot=ros_franka``, ``camera=realsense``,
  ``teleop=spacemouse``, ``learner.device=cuda`` without a GPU) is run as written and must
  exit non-zero with one stderr line matching ``error``; then its sim twin (the hardware
  overrides dropped: every verb defaults to the sim) must exit 0;
- ``skip``: allow-listed, with a reason that must appear in the README next to the command.

Placeholders (``<bc.safetensors>``, ``<run>``, ``<gpu box>``) are filled from the outputs of
the earlier commands; an unknown one fails with a message to add it to ``PLACEHOLDERS``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
VENV_BIN = Path(sys.executable).parent  # the venv running pytest holds `hilr`
TIMEOUT_S = 240  # per command; a hang fails with the command's log tail


@dataclass(frozen=True)
class Entry:
    """How the test runs the README commands whose text matches ``pattern`` (``re.match``).

    Attributes:
        pattern: regex matched against the command as written (comment stripped).
        budget: ``key=value`` overrides that keep it fast on CPU (``{transitions_port}`` and
            ``{weights_port}`` are filled with free ports).
        error: for a line naming hardware: regex the one stderr line must match here
            (default ``HARDWARE_ERROR``).
        readme_says: regex the README must hold next to the command (why it is skipped).
        skip: allow-list reason (the command is not run); ``readme_says`` backs it.
        dry_run_contains: for a skipped ``make`` target: text ``make -n`` must print.
        role: ``learner`` starts in the background; ``actor`` runs, then the learner is awaited.
        makes: glob patterns (relative to the working directory) each matching a file after it.
        pair_check: the learner + actor post-conditions run after this (actor) line.
    """

    pattern: str
    budget: tuple[str, ...] = ()
    error: str = ""
    readme_says: str = ""
    skip: str = ""
    dry_run_contains: str = ""
    role: str = ""
    makes: tuple[str, ...] = ()
    pair_check: bool = False


ACTOR_STEPS = 100  # env steps of the actor in the learner + actor pair (about 5 pick_cube episodes)
# The learner/actor ports are free ones picked at run time: long studies on this machine may
# hold the defaults 5555/5556. This is isolation, not a change of the documented command.
PORTS = ("transport.transitions_port={transitions_port}", "transport.weights_port={weights_port}")

# learning_starts below the actor's steps: real updates and weight versions within the budget;
# the learner stops as documented (idle exit after the actor's last transition), 5 s not 5 min
LEARNER_BUDGET = (f"loop.learning_starts={ACTOR_STEPS - 30}", "loop.publish_every=5", "loop.checkpoint_every_s=2",
                  "loop.idle_exit_s=5", "torch_threads=1", *PORTS)
# paced like `hilr demo`'s actor: a free-running state sim would end its 100 steps before the
# learner's first weights could arrive (published every weights_republish_s = 1 s)
ACTOR_BUDGET = (f"actor.total_steps={ACTOR_STEPS}", "actor.max_steps_per_s=25", "progress=false",
                "flush_timeout_s=60", *PORTS)

COMMANDS: tuple[Entry, ...] = (
    Entry(r"make demo\b", skip="minutes of the whole loop at full budget; `hilr demo` is what it runs after the set-up",
          readme_says=r"`make demo` runs `hilr demo` \(about \d+ min", dry_run_contains="hilr demo"),
    Entry(r"make test\b", skip="the whole test suite, this module included", readme_says="the whole test suite",
          dry_run_contains="pytest"),
    Entry(r"hilr calibrate intrinsics$", makes=("calibration_files/intrinsics_*.yaml",)),
    # 3 episodes: `hilr show data/demos 2` below needs an episode 2
    Entry(r"hilr record episodes=20 dataset=data/demos\b", budget=("episodes=3", "progress=false"),
          makes=("data/demos/meta.json", "data/demos/episodes/episode_000002.npz")),
    Entry(r"hilr train-bc dataset=data/demos\b", budget=("train.steps=20", "eval.episodes=1", "threads=1",
                                                          "progress=false"),
          makes=("runs/train_bc/latest/bc_best.safetensors",)),
    Entry(r"hilr learner demos=data/demos\b", budget=("learner.batch_size=32", *LEARNER_BUDGET), role="learner"),
    Entry(r"hilr actor base_policy=", budget=ACTOR_BUDGET, role="actor", pair_check=True),
    Entry(r"hilr eval base_policy=", budget=("episodes=1", "progress=false"),
          makes=("runs/eval/latest/eval_summary.json",)),
    Entry(r"hilr show \S+ \d+ format=mp4\b", makes=("runs/show/latest/episode_000002.mp4",)),
    Entry(r"hilr show \S+$", makes=("runs/show/latest/episode_000000.png",)),
    Entry(r"hilr dataset summary\b"),
    Entry(r"hilr dataset export\b", makes=("data/demos_lerobot/meta/info.json",
                                          "data/demos_lerobot/data/chunk-000/episode_000000.parquet")),
    Entry(r"hilr dataset import\b", makes=("data/demos_back/meta.json", "data/demos_back/episodes/episode_000002.npz")),
    # "A first session on a real robot": each line once as written (one-line hardware error), then
    # its sim twin with the sim cameras: image BC, the image classifier, an image learner and actor
    Entry(r"hilr calibrate intrinsics robot=ros_franka camera=realsense", makes=("calibration_files/intrinsics_*.yaml",)),
    Entry(r"hilr record robot=ros_franka", budget=("episodes=3", "progress=false"),
          makes=("data/real_demos/meta.json", "data/real_demos/frames/frames_000002.npz")),
    Entry(r"hilr train-bc dataset=data/real_demos", budget=("train.steps=10", "threads=1",
                                                           "progress=false"),
          makes=("runs/train_bc/latest/bc_best.safetensors",)),
    Entry(r"hilr train-reward\b", budget=("train.steps=10", "train.batch_size=16", "progress=false"),
          makes=("runs/train_reward/latest/reward_classifier.safetensors",)),
    Entry(r"hilr learner demos=data/real_demos", budget=("learner.batch_size=16", *LEARNER_BUDGET), role="learner"),
    Entry(r"hilr actor robot=ros_franka", budget=ACTOR_BUDGET,
          role="actor", makes=("runs/actor/latest/actor_summary.json",)),
    Entry(r"hilr eval robot=ros_franka", budget=("episodes=1", "progress=false"),
          makes=("runs/eval/latest/eval_summary.json",)),
)

# <placeholder> -> what the commands before it made, relative to the working directory
PLACEHOLDERS = {
    "<bc.safetensors>": "runs/train_bc/latest/bc_best.safetensors",  # hilr train-bc's best checkpoint
    "<run>": "latest",  # runs/learner/<run>/checkpoints: the learner run just made
    "<gpu box>": "127.0.0.1",  # the learner runs on this machine
}

# The one line a verb prints when the hardware a line names is not there (this machine has none).
HARDWARE_ERROR = (r"hilr [\w-]+: .*(cannot open SpaceMouse|no RealSense connected|is the robot driver running|"
                  r"no CUDA GPU is visible)")
# key=value overrides that name hardware; the sim twin drops them (each verb defaults to sim)
HARDWARE_OVERRIDES = re.compile(r"^(robot=(?!sim$)\S+|camera=(realsense|ros_realsense|opencv)|"
                                r"teleop=(spacemouse|ros_twist)|learner\.device=cuda\S*)$")


# ------------------------------------------------------------------------------ README parsing
@dataclass
class Command:
    """One README command: its text as written (comment stripped), block and position."""

    text: str
    heading: str
    start: int  # offset of the block in README.md
    end: int


@dataclass
class Block:
    """One ```bash block of README.md."""

    heading: str
    start: int
    end: int
    commands: list[Command] = field(default_factory=list)


def parse_readme(text: str) -> list[Block]:
    """The ```bash (sh, shell, console) blocks of ``text`` with their commands."""
    blocks = []
    fence = re.compile(r"^```(bash|sh|shell|console)[ \t]*\n(.*?)^```", re.S | re.M)
    for m in fence.finditer(text):
        headings = re.findall(r"^#+ (.+)$", text[: m.start()], re.M)
        block = Block(headings[-1].strip() if headings else "top", m.start(), m.end())
        pending = ""
        for raw in m.group(2).splitlines():
            line = raw.strip()
            if line.startswith("$ "):
                line = line[2:]
            if not pending and (not line or line.startswith("#")):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            line = re.sub(r"(^|\s)#.*$", "", pending + line).strip()  # a trailing comment
            pending = ""
            if line:
                block.commands.append(Command(" ".join(line.split()), block.heading, m.start(), m.end()))
        blocks.append(block)
    return blocks


def entry_for(command: str) -> list[Entry]:
    """The table entries matching ``command`` (exactly one is expected)."""
    return [e for e in COMMANDS if re.match(e.pattern, command)]


def near(text: str, cmd: Command) -> str:
    """README text next to a command: its block, the paragraph before and the text after."""
    return text[max(0, cmd.start - 800): cmd.end + 1600]


README_TEXT = README.read_text()
BLOCKS = parse_readme(README_TEXT)


# ------------------------------------------------------------------------------ running
def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_env() -> dict[str, str]:
    """The environment of a user in a fresh shell with the venv activated."""
    env = dict(os.environ)
    env.pop("HILR_RUNS_DIR", None)  # runs/ under the working directory, as the README paths assume
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENV_BIN.parent)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def with_budget(argv: list[str], budget: tuple[str, ...], values: dict[str, str]) -> list[str]:
    """``argv`` with each ``key=value`` of ``budget`` replacing the same key, or appended."""
    out = list(argv)
    for override in budget:
        override = override.format(**values)
        key = override.split("=", 1)[0]
        same = [i for i, a in enumerate(out) if a.lstrip("+").split("=", 1)[0] == key and "=" in a]
        if same:
            out[same[0]] = override
        else:
            out.append(override)
    return out


def fill_placeholders(command: str) -> str:
    """``command`` with every ``<placeholder>`` filled (KeyError naming an unknown one)."""
    for name in re.findall(r"<[^<>]+>", command):
        if name not in PLACEHOLDERS:
            raise KeyError(f"README command `{command}` uses placeholder {name}: add it to PLACEHOLDERS in "
                           f"{Path(__file__).name} (what an earlier command of the block produces)")
        command = command.replace(name, PLACEHOLDERS[name])
    return command


def has_cuda() -> bool:
    """Whether torch sees a CUDA GPU here (``learner.device=cuda`` then runs as written)."""
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
                         capture_output=True, text=True, timeout=120)
    return out.stdout.strip() == "True"


@dataclass
class Ran:
    """A finished (or started) command: argv, exit code, log files."""

    argv: list[str]
    rc: int | None
    out: Path
    err: Path
    proc: subprocess.Popen | None = None

    def tail(self, n: int = 15) -> str:
        text = self.out.read_text(errors="replace") + "\n--- stderr ---\n" + self.err.read_text(errors="replace")
        return "\n".join(text.splitlines()[-n:])

    def stderr_lines(self) -> list[str]:
        return [ln for ln in self.err.read_text(errors="replace").splitlines() if ln.strip()]


class Runner:
    """Runs README commands in order in one working directory and collects every problem."""

    def __init__(self, cwd: Path, cuda: bool):
        self.cwd, self.cuda, self.n = cwd, cuda, 0
        self.problems: list[str] = []
        self.values = {"transitions_port": str(free_port()), "weights_port": str(free_port())}
        self.learner: Ran | None = None

    def start(self, argv: list[str]) -> Ran:
        self.n += 1
        out, err = self.cwd / f"cmd{self.n:02d}.out", self.cwd / f"cmd{self.n:02d}.err"
        with open(out, "w") as stdout, open(err, "w") as stderr:  # the child keeps its own copies
            proc = subprocess.Popen(argv, cwd=self.cwd, env=run_env(), stdout=stdout, stderr=stderr,
                                    stdin=subprocess.DEVNULL)
        return Ran(argv, None, out, err, proc)

    def wait(self, ran: Ran, timeout: float = TIMEOUT_S) -> Ran:
        try:
            ran.rc = ran.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            ran.proc.kill()
            ran.proc.wait()
            ran.rc = None
        return ran

    def run(self, argv: list[str]) -> Ran:
        return self.wait(self.start(argv))

    def fail(self, what: str, ran: Ran | None = None) -> None:
        self.problems.append(what + (f"\n    {shlex.join(ran.argv)}\n" + _indent(ran.tail()) if ran else ""))

    def expect_ok(self, ran: Ran, label: str) -> bool:
        if ran.rc != 0:
            self.fail(f"{label}: exit {ran.rc} (expected 0)", ran)
            return False
        return True

    def command(self, cmd: Command, entry: Entry) -> None:
        """Run one README command as the table says (both runs for a hardware line)."""
        written = shlex.split(fill_placeholders(cmd.text))
        argv = with_budget(written, entry.budget, self.values)
        hardware = [a for a in argv[1:] if HARDWARE_OVERRIDES.match(a)]
        if self.cuda:  # a GPU box runs learner.device=cuda as written
            hardware = [a for a in hardware if not a.startswith("learner.device=")]
        if hardware:
            self.expect_one_line_failure(self.run(argv), cmd, entry)
            argv = [a for a in argv if a not in hardware]  # the sim twin: every verb defaults to sim
        if entry.role == "learner":
            self.learner = self.start(argv)
            self.wait_listening(self.learner)
            return
        ran = self.run(argv)
        label = f"`{cmd.text}`" + (" (sim twin: without " + " ".join(hardware) + ")" if hardware else "")
        ok = self.expect_ok(ran, label)
        if entry.role == "actor":
            ok = self.finish_pair(ran) and ok
        if ok and entry.pair_check:
            check_pair(self, ran)
        missing = [g for g in entry.makes if not list(self.cwd.glob(g))]
        if ok and missing:
            self.fail(f"`{cmd.text}` exited 0 but made no {', '.join(missing)}", ran)

    def expect_one_line_failure(self, ran: Ran, cmd: Command, entry: Entry) -> None:
        lines, error = ran.stderr_lines(), entry.error or HARDWARE_ERROR
        if ran.rc in (0, None) or len(lines) != 1 or not re.match(error, lines[0]):
            self.fail(f"`{cmd.text}` as written, without its hardware: expected a non-zero exit and one stderr "
                      f"line matching {error!r}; got exit {ran.rc} and {len(lines)} stderr lines", ran)

    def wait_listening(self, learner: Ran, timeout: float = 120.0) -> None:
        """Return once the learner logs that it listens (a user starts the actor after that,
        in the second terminal), or it exited, or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and learner.proc.poll() is None:
            if "listening on ports" in learner.out.read_text(errors="replace"):
                return
            time.sleep(0.2)

    def finish_pair(self, actor: Ran) -> bool:
        """Wait for the learner started with the actor; both must exit 0."""
        if self.learner is None:
            self.fail("the actor line ran without a learner started before it (README order: learner, then actor)")
            return False
        learner, self.learner = self.learner, None
        if actor.rc != 0 and learner.proc.poll() is None:
            learner.proc.kill()  # without transitions it would never go idle; our own child, by handle
        return self.expect_ok(self.wait(learner, timeout=120), "the learner started with the actor")

    def close(self) -> None:
        if self.learner is not None and self.learner.proc.poll() is None:
            self.learner.proc.kill()  # the test's own child, by its handle
            self.learner.proc.wait()
            self.fail("the learner was started but no actor line followed it", self.learner)


def _indent(text: str) -> str:
    return "\n".join("      | " + ln for ln in text.splitlines())


def _latest(cwd: Path, verb: str) -> Path:
    return cwd / "runs" / verb / "latest"


# ------------------------------------------------------------------------------ post-conditions
def check_pair(r: Runner, ran: Ran) -> None:
    """The documented pair trained together: every transition arrived, weights reached the actor."""
    actor = json.loads((_latest(r.cwd, "actor") / "actor_summary.json").read_text())
    learner = json.loads((_latest(r.cwd, "learner") / "learner_summary.json").read_text())
    if actor["env_steps"] != ACTOR_STEPS or not actor["flushed"] or learner["env_steps"] != ACTOR_STEPS:
        r.fail(f"learner + actor: actor ran {actor['env_steps']} steps (flushed={actor['flushed']}), learner "
               f"trained on {learner['env_steps']}; expected {ACTOR_STEPS} on both ends", ran)
    if learner["updates"] < 1:
        r.fail(f"learner + actor: the learner made no update ({learner})", ran)
    if actor["weight_updates"] < 1:
        rejected = [ln for ln in ran.out.read_text(errors="replace").splitlines() if "rejected" in ln][:1]
        r.fail("learner + actor as documented: the actor never took the learner's weights (weight_updates=0)"
               + (f"; first rejection: {rejected[0].split(' - ', 1)[-1]}" if rejected else ""), ran)


# ------------------------------------------------------------------------------ tests
def test_every_readme_command_has_an_entry():
    """README and table cannot drift: each command has exactly one entry, each entry a command."""
    commands = [c for b in BLOCKS for c in b.commands]
    assert commands, "no command found in README.md's ```bash blocks"
    problems = []
    for cmd in commands:
        matches = entry_for(cmd.text)
        if not matches:
            problems.append(f"README.md command `{cmd.text}` (section '{cmd.heading}') has no entry in COMMANDS of "
                            f"{Path(__file__).name}: add one (budget overrides to run it fast in sim, the one-line "
                            "error it gives without hardware, or an allow-list reason the README states)")
        elif len(matches) > 1:
            problems.append(f"`{cmd.text}` matches {len(matches)} COMMANDS entries: make the patterns distinct")
        try:
            fill_placeholders(cmd.text)
        except KeyError as exc:
            problems.append(str(exc.args[0]))
    for entry in COMMANDS:
        if not any(re.match(entry.pattern, c.text) for c in commands):
            problems.append(f"COMMANDS entry {entry.pattern!r} matches no README command any more: remove it")
    assert not problems, "\n".join(problems)


def test_allow_listed_commands_are_explained_in_the_readme():
    """A skipped command: its reason is in the README next to it, and ``make -n`` shows the target."""
    problems = []
    for cmd in (c for b in BLOCKS for c in b.commands):
        for entry in entry_for(cmd.text):
            if entry.readme_says and not re.search(entry.readme_says, near(README_TEXT, cmd)):
                problems.append(f"README.md should say {entry.readme_says!r} next to `{cmd.text}`: the reason "
                                f"COMMANDS gives for not running it ({entry.skip})")
            if entry.skip and entry.dry_run_contains:
                out = subprocess.run([*shlex.split(cmd.text), "-n"], cwd=REPO, capture_output=True, text=True,
                                     timeout=60)
                if out.returncode != 0 or entry.dry_run_contains not in out.stdout:
                    problems.append(f"`{cmd.text} -n` should exit 0 and show {entry.dry_run_contains!r}: "
                                    f"exit {out.returncode}\n{out.stdout[-500:]}{out.stderr[-500:]}")
    assert not problems, "\n".join(problems)


@pytest.mark.timeout(1500)
def test_readme_commands_run_as_written(tmp_path: Path):
    """Every README command, in README order, in one fresh working directory: later blocks
    use what earlier ones made (the data/demos that `hilr show` looks at is the one recorded
    in the operator's workflow), as for a user going down the page."""
    runner = Runner(tmp_path, cuda=has_cuda())
    ran = 0
    try:
        for cmd in (c for b in BLOCKS for c in b.commands):
            matches = entry_for(cmd.text)
            if len(matches) != 1:
                runner.fail(f"`{cmd.text}`: {len(matches)} COMMANDS entries (test_every_readme_command_has_an_entry)")
                continue
            if matches[0].skip:
                continue
            try:
                runner.command(cmd, matches[0])
                ran += 1
            except KeyError as exc:
                runner.fail(str(exc.args[0]))
    finally:
        runner.close()
    assert ran, "no README command ran"
    assert not runner.problems, f"{len(runner.problems)} README command problem(s):\n" + "\n".join(
        runner.problems)


def test_inline_hilr_commands_compose():
    """The `hilr ...` commands quoted in the README's prose (measured-here table, known limits)
    are not run here (benchmarks, minutes each), but each names a real verb and its overrides
    compose with that verb's config, so a renamed option fails here, not for a reader."""
    import importlib

    from learners import cli

    problems, checked = [], 0
    for span in sorted(set(re.findall(r"`(hilr [^`\n]+)`", README_TEXT))):
        if "<" in span:  # a pattern such as `hilr <verb> --help`, not a command
            continue
        words = shlex.split(span)[1:]
        if not words or words[0] in ("--help", "-h", "help"):
            checked += 1  # the verb list: nothing to compose
            continue
        verb = words[0]
        if verb not in cli.VERBS:
            problems.append(f"README quotes `{span}` but `{verb}` is not a hilr verb ({sorted(cli.VERBS)})")
            continue
        rest = cli.positional_to_overrides(verb, words[1:])
        rest = [f"{a[2:]}=true" if a.startswith("--") and "=" not in a and a[2:] not in cli.HYDRA_FLAGS else a
                for a in rest if a not in ("--help", "-h", "--verbose", "-v")]
        module, func = cli.VERBS[verb][0].split(":")
        config_name = getattr(getattr(importlib.import_module(module), func), "config_name", None)
        if config_name is None:
            continue
        problem = cli.override_problem(config_name, rest)
        if problem:
            problems.append(f"README quotes `{span}`: {problem}")
        checked += 1
    assert checked, "no inline `hilr ...` command found in README.md"
    assert not problems, "\n".join(problems)
