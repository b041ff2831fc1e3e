"""Run untrusted candidate code against unit tests in a contained child process.

`run_unit_tests` executes a candidate program and its tests (HumanEval style, or plain asserts) in a fresh
Python interpreter and returns a `TestOutcome`: passed or not, and one line saying why.

Isolation, layer by layer:

* **Process.** A fresh interpreter (``python -I -B -X utf8``: isolated mode, no ``PYTHON*`` variables, no user
  site, no bytecode writes), started in its own session and process group, with a minimal environment (no
  variables of the caller, so no API keys), stdin from ``/dev/null``, and a private temporary working directory
  (also ``HOME`` and ``TMPDIR``) that is deleted afterwards.
* **Kernel limits** (``setrlimit`` in the child before the candidate runs): address space (``RLIMIT_AS``,
  ``memory_mb``), CPU time (``RLIMIT_CPU``, a backstop to the wall clock), file size (``RLIMIT_FSIZE``), open files,
  no core dumps, and ``RLIMIT_NPROC = 0``: no new processes or threads. The kernel does not apply ``RLIMIT_NPROC``
  to root, which is why process creation is also refused by the audit hook below, and why, to behave the same for
  root and others, thread creation is refused in the interpreter too.
* **Supervision** (the caller's side): a wall-clock timeout, stdout and stderr captured with a byte cap, and the
  whole process group killed with SIGKILL when the run ends, whatever the reason.
* **Audit hook** (``sys.addaudithook``, installed before the candidate runs and impossible to remove from Python):
  the first forbidden action ends the child at once (so ``try``/``except`` cannot swallow it) and is reported as
  ``forbidden: ...``: creating processes (``os.fork``, ``subprocess``, ``os.system``, ``os.exec*``,
  ``os.posix_spawn``, ``_posixsubprocess.fork_exec``), network (socket ``connect``/``bind``/``sendto``, name
  lookups, any socket but ``AF_UNIX``), writes outside the sandbox directory (``open`` for writing, ``os.remove``,
  ``rename``, ``mkdir``, ``chmod``, ``link`` ... with symlinks, ``dir_fd`` and fds resolved; ``/dev/null`` is
  allowed), signals to other processes (``os.kill``, ``os.killpg``), reading other processes' ``/proc`` entries
  (their environment or memory), raising resource limits, ``ctypes`` and sub-interpreters. ``ctypes``, ``cffi``
  and ``_multiprocessing``/``_posixshmem`` (named semaphores and shared memory live outside the sandbox) cannot be
  imported (``ImportError``, so libraries that import them optionally keep working), and the few
  dangerous functions that CPython does not audit are removed (``os.mknod``, ``os.mkfifo``, ``os.pidfd_open``,
  ``signal.pidfd_send_signal``, ``os.setpriority``, ``os.sched_set*``, ``os.chroot``).
* **Proof that the tests ran.** The runner writes a random per-run token on a private pipe only after the checks
  returned; ``passed`` requires it and a clean exit, so ``sys.exit(0)``, ``os._exit(0)`` or printing "passed" does
  not count.

Honest limits. Audit hooks are not a security boundary (PEP 578 says so): they run inside the process they watch.
The sandbox contains accidental and naive misbehaviour of model-written code reliably, but code written on purpose
to defeat it can: call into a compiled extension from site-packages that makes system calls directly (extensions are
not audited; ``ctypes``/``cffi`` are refused); re-instantiate a built-in module
(``importlib.util.module_from_spec(find_spec("posix"))``) to get the removed functions back; monkeypatch the
standard-library functions the hook itself uses; or find the run token in memory and forge a pass. A process started
through such a hole could also leave the process group (``setsid``) and outlive the final SIGKILL: for other users
``RLIMIT_NPROC = 0`` stops it in the kernel, for root nothing does. Reads are not restricted: the candidate can read
any file the user can (except other processes' ``/proc`` entries), so do not run it as a user whose files hold
secrets. Kernel limits are per process, not per sandbox, and a full disk by many small files is not prevented
(``RLIMIT_FSIZE`` bounds each file). For adversarial code, also run the whole verifier as an unprivileged user
inside a container or VM with no network (e.g. gVisor, nsjail, Firecracker); this module is the inner layer.

Candidate and tests run in one module namespace named ``candidate`` (not ``__main__``, as in the HumanEval
harness, so ``if __name__ == "__main__":`` blocks do not run).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

__all__ = ["TestOutcome", "run_unit_tests"]

_READ_CHUNK = 65536
_REPORT_CAP = 65536
_DRAIN_SECONDS = 1.0
_POLL_SECONDS = 0.1
_MIN_MEMORY_MB = 64
_OPEN_FILES = 256


@dataclass(frozen=True)
class TestOutcome:
    """What happened when candidate code ran against its tests.

    Attributes:
        passed: True only if the tests ran to completion without an error and the child exited cleanly.
        reason: One line: ``"passed"``, ``"failed: AssertionError (tests line 3: assert f(1) == 2)"``,
            ``"timeout: ..."``, ``"memory limit: ..."``, ``"output limit: ..."``, ``"file size limit: ..."``,
            ``"forbidden: network (...)"``, ``"forbidden: write outside sandbox (...)"``,
            ``"forbidden: signal to parent (...)"``, ``"forbidden: process creation (...)"``,
            ``"crashed: killed by SIGSEGV"`` ...
        seconds: Wall-clock seconds from start to the child's end, interpreter start-up included.
        stdout: The child's standard output, decoded as UTF-8, at most ``max_output_bytes`` bytes.
        stderr: The child's standard error (tracebacks land here), capped the same way.
        returncode: The child's exit status; negative for the number of the signal that ended it.
    """

    __test__ = False  # not a pytest test class despite its name

    passed: bool
    reason: str
    seconds: float
    stdout: str
    stderr: str
    returncode: int


def run_unit_tests(
    code: str,
    tests: str,
    *,
    timeout: float = 10.0,
    memory_mb: int = 512,
    entry_point: str | None = None,
    max_output_bytes: int = 65536,
    max_file_bytes: int = 16 * 2**20,
) -> TestOutcome:
    r"""Run ``code`` and then ``tests`` in a sandboxed child interpreter.

    Args:
        code: The candidate program, e.g. a function definition (HumanEval: prompt + completion).
        tests: Test code run after the candidate in the same namespace: HumanEval's ``def check(candidate)``
            when ``entry_point`` is given, else plain asserts or any code that raises on failure.
        timeout: Wall-clock seconds for the whole run, interpreter start-up included.
        memory_mb: Address-space limit of the child in MiB.
        entry_point: Name of the candidate function; if given, ``check(<entry_point>)`` is called after the tests
            are defined.
        max_output_bytes: Cap on each of stdout and stderr; more output ends the run with ``"output limit"``.
        max_file_bytes: Largest file the child may write (``RLIMIT_FSIZE``).

    Returns:
        The `TestOutcome`; every misbehaviour of the candidate is a failed outcome, never an exception.

    Raises:
        ValueError: An argument is out of range.
        OSError: The child interpreter could not be started.

    Example:
        >>> code = "def add(a, b):\n    return a + b\n"
        >>> tests = "def check(f):\n    assert f(2, 3) == 5\n"
        >>> outcome = run_unit_tests(code, tests, entry_point="add")
        >>> outcome.passed, outcome.reason
        (True, 'passed')
        >>> run_unit_tests("def add(a, b):\n    return a - b\n", tests, entry_point="add").reason
        'failed: AssertionError (tests line 2: assert f(2, 3) == 5)'
    """
    _validate(code, tests, timeout, memory_mb, entry_point, max_output_bytes, max_file_bytes)
    started = time.monotonic()
    token = secrets.token_hex(16)
    workdir = os.path.realpath(tempfile.mkdtemp(prefix="archon-sandbox-"))
    report_read, report_write = os.pipe()
    proc = None
    try:
        job_path = os.path.join(workdir, ".archon-job.json")
        job = {
            "token": token,
            "report_fd": report_write,
            "sandbox": workdir,
            "code": code,
            "tests": tests,
            "entry_point": entry_point,
            "memory_bytes": memory_mb * 2**20,
            "cpu_seconds": _cpu_seconds(timeout),
            "file_bytes": max_file_bytes,
            "open_files": _OPEN_FILES,
        }
        with open(job_path, "w", encoding="utf-8") as f:
            json.dump(job, f)
        proc = subprocess.Popen(
            [sys.executable, "-I", "-B", "-X", "utf8", "-c", _BOOTSTRAP, job_path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
            env=_child_env(workdir),
            pass_fds=(report_write,),
            start_new_session=True,
        )
        os.close(report_write)
        report_write = -1
        fds = {"stdout": proc.stdout.fileno(), "stderr": proc.stderr.fileno(), "report": report_read}
        caps = {"stdout": max_output_bytes, "stderr": max_output_bytes, "report": _REPORT_CAP}
        captured, event = _collect(proc.pid, fds, caps, started + timeout)
        _kill_group(proc.pid)  # the leader is not reaped yet, so its group id cannot have been reused
        _drain(fds, caps, captured)
        returncode = proc.wait()
        seconds = time.monotonic() - started
    finally:
        if proc is not None:
            if proc.returncode is None:  # interrupted above: never leave the group running
                _kill_group(proc.pid)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
            for stream in (proc.stdout, proc.stderr):
                stream.close()
        for fd in (report_read, report_write):
            if fd >= 0:
                os.close(fd)
        _remove_tree(workdir)
    stdout = captured["stdout"][:max_output_bytes].decode("utf-8", "replace")
    stderr = captured["stderr"][:max_output_bytes].decode("utf-8", "replace")
    passed, reason = _verdict(
        event=event,
        report=_parse_report(bytes(captured["report"]), token),
        returncode=returncode,
        timeout=timeout,
        cpu_seconds=_cpu_seconds(timeout),
        max_output_bytes=max_output_bytes,
        stderr=stderr,
    )
    return TestOutcome(passed, reason, seconds, stdout, stderr, returncode)


def _validate(code, tests, timeout, memory_mb, entry_point, max_output_bytes, max_file_bytes) -> None:
    if not isinstance(code, str) or not isinstance(tests, str):
        raise ValueError("code and tests must be strings of Python source")
    if not isinstance(timeout, int | float) or not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a positive, finite number of seconds, got {timeout!r}")
    if not isinstance(memory_mb, int) or memory_mb < _MIN_MEMORY_MB:
        raise ValueError(f"memory_mb must be an int >= {_MIN_MEMORY_MB} (the interpreter needs it), got {memory_mb!r}")
    if entry_point is not None and not (isinstance(entry_point, str) and entry_point.isidentifier()):
        raise ValueError(f"entry_point must be a Python identifier or None, got {entry_point!r}")
    for name, value in (("max_output_bytes", max_output_bytes), ("max_file_bytes", max_file_bytes)):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")


def _cpu_seconds(timeout: float) -> int:
    """CPU-time limit: above the wall clock, so it only fires if the supervisor could not act."""
    return math.ceil(timeout) + 1


def _child_env(workdir: str) -> dict[str, str]:
    """A minimal environment: nothing of the caller's (API keys, tokens) reaches the child."""
    single_thread = dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1")
    loader = {"LD_LIBRARY_PATH": os.environ["LD_LIBRARY_PATH"]} if "LD_LIBRARY_PATH" in os.environ else {}
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        **single_thread,
        **loader,  # some interpreters need it to start
    }


def _exited(pid: int) -> bool:
    """Whether the child has exited, without reaping it (so its pid and group id cannot be reused yet)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _collect(
    pid: int, fds: dict[str, int], caps: dict[str, int], deadline: float
) -> tuple[dict[str, bytearray], str | None]:
    """Read the child's pipes until they close, the child exits, a cap is exceeded or the deadline passes.

    Returns:
        The bytes read per stream, and ``None``, ``"timeout"`` or ``"output:<stream>"``.
    """
    captured = {name: bytearray() for name in fds}
    names = {fd: name for name, fd in fds.items()}
    with selectors.DefaultSelector() as selector:
        for fd in fds.values():
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return captured, "timeout"
            for key, _ in selector.select(min(remaining, _POLL_SECONDS)):
                chunk = os.read(key.fd, _READ_CHUNK)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                name = names[key.fd]
                captured[name] += chunk
                if len(captured[name]) > caps[name]:
                    if name == "report":  # not the runner's: it writes one short line
                        selector.unregister(key.fd)
                        continue
                    return captured, f"output:{name}"
            if _exited(pid):
                break
    return captured, None


def _drain(fds: dict[str, int], caps: dict[str, int], captured: dict[str, bytearray]) -> None:
    """After the group is killed, read what is left in the pipes (bounded in bytes and time)."""
    deadline = time.monotonic() + _DRAIN_SECONDS
    with selectors.DefaultSelector() as selector:
        for name, fd in fds.items():
            if len(captured[name]) <= caps[name]:
                selector.register(fd, selectors.EVENT_READ, name)
        while selector.get_map() and (remaining := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, _READ_CHUNK)
                captured[key.data] += chunk
                if not chunk or len(captured[key.data]) > caps[key.data]:
                    selector.unregister(key.fd)


def _kill_group(pgid: int) -> None:
    """SIGKILL every process of the group.

    One signal suffices: the kernel delivers a group signal to all members at once, and a fork racing with it
    is restarted so the new child gets it too.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _remove_tree(path: str) -> None:
    """Delete the sandbox directory even if the candidate removed permissions inside it."""
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    for root, dirs, _ in os.walk(path):
        for name in dirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(root, name), 0o700, follow_symlinks=False)
    shutil.rmtree(path, ignore_errors=True)


def _parse_report(data: bytes, token: str) -> tuple[str, str] | None:
    """The runner's final ``(status, reason)``; lines without the run's token are ignored."""
    result = None
    for line in data.decode("utf-8", "replace").splitlines():
        head, _, rest = line.partition(" ")
        if head == token:
            status, _, reason = rest.partition(" ")
            result = (status, reason)
    return result


def _verdict(
    *,
    event: str | None,
    report: tuple[str, str] | None,
    returncode: int,
    timeout: float,
    cpu_seconds: int,
    max_output_bytes: int,
    stderr: str,
) -> tuple[bool, str]:
    """Decide ``(passed, reason)`` from what the supervisor saw and what the runner reported."""
    if report is not None and report[0] == "forbidden":
        return False, report[1]
    if event is not None and event.startswith("output:"):
        return False, f"output limit: {event.partition(':')[2]} exceeded {max_output_bytes} bytes"
    if event == "timeout":
        return False, f"timeout: no result after {timeout:g} s (wall clock)"
    if report is not None and returncode == 0 and report[0] == "passed":
        return True, "passed"
    if report is not None and report[0] != "passed":
        return False, report[1]
    if returncode < 0:
        return False, _signal_reason(-returncode, cpu_seconds)
    if returncode == 0:
        return False, "failed: exited before the tests finished (exit code 0)"
    last = stderr.strip().splitlines()[-1:] if stderr.strip() else []
    return False, f"crashed: exit code {returncode}" + (f" ({last[0][:200]})" if last else "")


def _signal_reason(signum: int, cpu_seconds: int) -> str:
    if signum == signal.SIGXCPU:
        return f"timeout: cpu time limit ({cpu_seconds} s)"
    if signum == signal.SIGXFSZ:
        return "file size limit: killed by SIGXFSZ"
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    return f"crashed: killed by {name}"


# The child's runner. It runs as `python -I -B -X utf8 -c _BOOTSTRAP <job.json>` in the sandbox directory: it
# reads and deletes the job, sets the kernel limits, disables what cannot be audited, installs the audit hook,
# then runs the candidate and the tests, and reports on the private pipe. Kept as source text so the child
# imports nothing of this package (and so nothing that would open a way around the hook before it is in place).
_BOOTSTRAP = r'''
import _posixsubprocess, _signal, _thread, json, linecache, os, posix, resource, signal, sys, traceback, types


def main():
    job_path = sys.argv[1]
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    os.remove(job_path)
    token, report_fd, sandbox = job["token"], job["report_fd"], job["sandbox"]
    write, exit_now, realpath, readlink, getcwd = os.write, os._exit, os.path.realpath, os.readlink, os.getcwd
    fspath, fsdecode, isdir, getrlimit = os.fspath, os.fsdecode, os.path.isdir, resource.getrlimit
    own_pid, parent_pid = os.getpid(), os.getppid()
    try:
        parent_pgid = os.getpgid(parent_pid)
    except OSError:
        parent_pgid = -1
    prefix = sandbox.rstrip("/") + "/"
    memory_message = ("%s memory memory limit: MemoryError\n" % token).encode()

    def one_line(text, limit=300):
        text = " ".join(str(text).split())
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def report(status, reason):
        try:
            write(report_fd, ("%s %s %s\n" % (token, status, one_line(reason, 500))).encode("utf-8", "replace"))
        except OSError:
            pass

    def flush():
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()
            except Exception:
                pass

    def violation(what):
        flush()
        report("forbidden", "forbidden: " + what)
        exit_now(3)

    # Kernel limits. RLIMIT_NPROC = 0: no new processes or threads (the kernel exempts root).
    def limit(res, soft, hard=None):
        hard = soft if hard is None else hard
        current = getrlimit(res)[1]
        if current != resource.RLIM_INFINITY:
            soft, hard = min(soft, current), min(hard, current)
        resource.setrlimit(res, (soft, hard))

    limit(resource.RLIMIT_AS, job["memory_bytes"])
    limit(resource.RLIMIT_CPU, job["cpu_seconds"], job["cpu_seconds"] + 1)
    limit(resource.RLIMIT_FSIZE, job["file_bytes"])
    limit(resource.RLIMIT_NOFILE, job["open_files"])
    limit(resource.RLIMIT_CORE, 0)
    limit(resource.RLIMIT_NPROC, 0)

    # What CPython does not audit: refuse threads (so root behaves as RLIMIT_NPROC makes others behave),
    # refuse _posixsubprocess.fork_exec (subprocess's and multiprocessing's way to fork), and remove the
    # unaudited functions that reach other processes or create device nodes and fifos.
    def no_threads(*args, **kwargs):
        raise RuntimeError("can't start new thread (threads are disabled in the sandbox)")

    def no_fork_exec(*args, **kwargs):
        violation("process creation (_posixsubprocess.fork_exec)")

    _thread.start_new_thread = _thread.start_new = no_threads
    if hasattr(_thread, "start_joinable_thread"):  # Python 3.13+
        _thread.start_joinable_thread = no_threads
    if "threading" in sys.modules:
        sys.modules["threading"]._start_new_thread = no_threads
    _posixsubprocess.fork_exec = no_fork_exec
    unaudited = ("mknod", "mkfifo", "pidfd_open", "setpriority", "chroot", "setns", "unshare",
                 "sched_setaffinity", "sched_setscheduler", "sched_setparam", "pidfd_send_signal")
    for module in (os, posix, signal, _signal):
        for name in unaudited:
            if hasattr(module, name):
                delattr(module, name)

    def fd_path(fd):
        target = readlink("/proc/self/fd/%d" % fd)
        return realpath(target) if target.startswith("/") else None  # pipes, sockets: not files

    def resolve(path, dir_fd=None, follow=True):
        """Absolute real path of what an operation touches; None for fds that are not files."""
        if isinstance(path, int):
            return fd_path(path)
        path = fspath(path)
        if isinstance(path, bytes):
            path = fsdecode(path)
        if not path.startswith("/"):
            base = getcwd() if dir_fd is None or dir_fd < 0 else fd_path(dir_fd)
            if base is None:
                raise OSError("dir_fd %r is not a directory" % dir_fd)
            path = base.rstrip("/") + "/" + path
        if follow:
            return realpath(path)
        path = path.rstrip("/") or "/"
        head, _, tail = path.rpartition("/")
        if tail in ("", ".", ".."):
            return realpath(path)
        return realpath(head or "/").rstrip("/") + "/" + tail

    def writable(path):
        return path is None or path == sandbox or path.startswith(prefix) or path == "/dev/null"

    def check_write(event, path, dir_fd=None, follow=True):
        resolved = resolve(path, dir_fd, follow)
        if not writable(resolved):
            return "write outside sandbox (%s %s)" % (event, resolved)
        return None

    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def on_open(args):
        path, mode, flags = args
        if isinstance(path, int):
            return None  # an fd already open: its access mode cannot grow
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & write_flags
        )
        resolved = resolve(path)
        parts = resolved.split("/")
        if len(parts) > 2 and parts[1] == "proc" and parts[2].isdigit() and int(parts[2]) != own_pid:
            return "access to another process (%s)" % resolved
        if writable(resolved):
            return None
        if writing:
            return "write outside sandbox (open %s)" % resolved
        if mode is None and isdir(resolved):  # os.open of a directory: a dir_fd for writes the hook cannot see
            return "write outside sandbox (directory handle %s)" % resolved
        return None

    def paths(*spec):
        """A handler checking the event's path arguments: spec items are (index, dir_fd index, follow)."""
        def handler(args, event):
            for index, fd_index, follow in spec:
                dir_fd = args[fd_index] if fd_index is not None and fd_index < len(args) else None
                problem = check_write(event, args[index], dir_fd, follow)
                if problem:
                    return problem
            return None
        return handler

    def process(args, event):
        return "process creation (%s)" % " ".join([event] + ([one_line(repr(args), 120)] if args else []))

    def network(args, event):
        if args and hasattr(args[0], "fileno"):
            args = args[1:]  # the socket object itself says little
        return "network (%s %s)" % (event, one_line(repr(args), 120))

    families = {2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET"}

    def new_socket(args, event):
        if args[1] == 1:  # AF_UNIX: socketpair() for asyncio's self-pipe; connect and bind stay refused
            return None
        return "network (socket.socket %s)" % families.get(args[1], "family %r" % (args[1],))

    def kill(args, event):
        pid, signum = args
        if pid in (0, own_pid) or (event == "os.kill" and pid == -own_pid):
            return None
        if event == "os.killpg":
            to_parent = pid == parent_pgid
        else:
            to_parent = -pid == parent_pgid if pid < 0 else pid == parent_pid
        who = "parent" if to_parent else "another process"
        return "signal to %s (%s pid=%s signal=%s)" % (who, event, pid, signum)

    def raises_limit(res, limits):
        if limits is None:
            return None
        hard = getrlimit(res)[1]
        infinite = resource.RLIM_INFINITY
        for value in limits:
            if hard != infinite and (value == infinite or value > hard):
                return "raising resource limits (%s)" % (limits,)
        return None

    def setrlimit(args, event):
        return raises_limit(*args)

    def prlimit(args, event):
        pid, res, limits = (tuple(args) + (None,))[:3]
        if pid not in (0, own_pid):
            return "resource limits of another process (pid=%s)" % pid
        return raises_limit(res, limits)

    refused_imports = {"ctypes", "_ctypes", "_cffi_backend", "_posixshmem", "_multiprocessing",
                       "_xxsubinterpreters", "_xxinterpchannels", "_interpreters", "_interpchannels", "_interpqueues"}

    def on_import(args, event):
        name = args[0]
        if name in refused_imports:
            raise ImportError("%s is disabled in the sandbox" % name, name=name)
        if name == "_posixsubprocess":  # loaded above, so this is a fresh copy with the real fork_exec
            return "process creation (re-importing _posixsubprocess)"
        return None

    def refuse(what):
        return lambda args, event: "%s (%s)" % (what, event)

    handlers = {
        "open": lambda args, event: on_open(args),
        "import": on_import,
        "os.remove": paths((0, 1, False)),
        "os.rmdir": paths((0, 1, False)),
        "os.mkdir": paths((0, 2, False)),
        "os.rename": paths((0, 2, False), (1, 3, False)),
        "os.link": paths((0, 2, True), (1, 3, False)),
        "os.symlink": paths((1, 2, False)),
        "os.chmod": paths((0, 2, True)),
        "os.chown": paths((0, 3, True)),
        "os.chflags": paths((0, None, True)),
        "os.lchflags": paths((0, None, False)),
        "os.truncate": paths((0, None, True)),
        "os.utime": paths((0, 3, True)),
        "os.setxattr": paths((0, None, True)),
        "os.removexattr": paths((0, None, True)),
        "shutil.rmtree": paths((0, 1, False)),
        "os.kill": kill,
        "os.killpg": kill,
        "resource.setrlimit": setrlimit,
        "resource.prlimit": prlimit,
        "socket.__new__": new_socket,
        "cpython.PyInterpreterState_New": refuse("sub-interpreter"),
    }
    for event in ("os.fork", "os.forkpty", "os.posix_spawn", "os.exec", "os.spawn", "os.system",
                  "subprocess.Popen", "os.startfile"):
        handlers[event] = process
    for event in ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
                  "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo", "socket.sethostname"):
        handlers[event] = network
    for event in ("ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle", "ctypes.call_function", "ctypes.cdata",
                  "ctypes.cdata/buffer", "ctypes.addressof", "ctypes.string_at", "ctypes.wstring_at",
                  "ctypes.create_string_buffer", "ctypes.create_unicode_buffer", "ctypes.PyObj_FromPtr"):
        handlers[event] = refuse("ctypes")
    busy = []

    def hook(event, args):
        handler = handlers.get(event)
        if handler is None or busy:
            return
        busy.append(event)
        try:
            problem = handler(args, event)
        except ImportError:
            raise
        except Exception as exc:  # fail closed: what cannot be checked is refused
            problem = "%s, which the sandbox could not check (%s: %s)" % (event, type(exc).__name__, exc)
        finally:
            busy.pop()
        if problem:
            violation(problem)

    # The candidate's namespace: a real module, so dataclasses, pickle and typing find it.
    code, tests, entry_point = job["code"], job["tests"], job["entry_point"]
    sources = {"<candidate>": code, "<tests>": tests}
    for filename, source in sources.items():
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType("candidate")
    sys.modules["candidate"] = module
    namespace = module.__dict__
    sys.argv = ["candidate"]
    del job

    def where(exc):
        if isinstance(exc, SyntaxError) and exc.filename in sources:
            return "%s line %s" % (exc.filename.strip("<>"), exc.lineno)
        found = None
        tb = exc.__traceback__
        while tb is not None:
            filename = tb.tb_frame.f_code.co_filename
            if filename in sources:
                found = (filename, tb.tb_lineno)
            tb = tb.tb_next
        if found is None:
            return ""
        line = linecache.getline(found[0], found[1]).strip()
        return "%s line %s%s" % (found[0].strip("<>"), found[1], ": " + line if line else "")

    def describe(exc):
        try:
            message = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        except Exception:
            message = "<unprintable>"
        text = type(exc).__name__ + (": " + one_line(message, 160) if message else "")
        place = where(exc)
        return text + (" (%s)" % place if place else "")

    sys.addaudithook(hook)
    try:
        exec(compile(code, "<candidate>", "exec", dont_inherit=True), namespace)
        exec(compile(tests, "<tests>", "exec", dont_inherit=True), namespace)
        if entry_point is not None:
            if "check" not in namespace:
                raise NameError("the tests define no check(candidate) function")
            if entry_point not in namespace:
                raise NameError("the candidate defines no %r" % entry_point)
            namespace["check"](namespace[entry_point])
    except MemoryError as exc:
        try:
            report("memory", "memory limit: " + describe(exc))
        except BaseException:
            write(report_fd, memory_message)
        flush()
        exit_now(1)
    except BaseException as exc:
        try:  # the traceback from the candidate's and tests' frames on (not this runner's)
            traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
        except BaseException:
            pass
        flush()
        if isinstance(exc, SystemExit):
            report("failed", "failed: exited before the tests finished (SystemExit: %r)" % (exc.code,))
        elif isinstance(exc, OSError) and exc.errno == 27:  # EFBIG: RLIMIT_FSIZE
            report("failed", "file size limit: " + describe(exc))
        else:
            report("failed", "failed: " + describe(exc))
        exit_now(1)
    flush()
    report("passed", "passed")
    exit_now(0)


main()
'''
