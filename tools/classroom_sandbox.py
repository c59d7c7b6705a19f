"""The sandbox each submission is graded in (tools/classroom_grade.py).

On Linux with bubblewrap (``bwrap``, the Debian/Ubuntu package
``bubblewrap``; ``make grader-deps`` installs it) the checks' process
runs

* in new user, PID, network, IPC, UTS and cgroup namespaces: no
  network (not even the host's loopback), only its own processes in
  ``/proc``, an unprivileged user (uid 1000) with no capabilities;
* on a file system of its own: ``/usr`` (and the ``/lib``, ``/bin``
  links), the Python installation, the virtual environment and the
  package read-only, a fake ``/etc/passwd``, an empty ``/tmp`` and a
  throw-away home and working folder (``/home/student``); nothing else
  of the machine, so none of the teacher's folders (submissions,
  solutions, autograder zips, grades) exists for it;
* with a cleared environment, killed with the grader.

``status()`` says whether that works here (it runs ``bwrap`` once);
where it does not (macOS, Windows, a container without user namespaces,
no bwrap) ``command`` returns the plain command and grading says on
every run that it is not sandboxed; the checks' process still refuses
files, sockets and programs to student code (tools/classroom_check.py),
but that is a guard inside Python, not a wall around it.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

#: Where things are inside the sandbox.
HOME = "/home/student"
WORK = "/home/student/work"
CHECKER = "/opt/grader/classroom_check.py"
PACKAGES = "/opt/grader/packages"
INSTALL = "sudo apt-get install -y bubblewrap"
#: What libraries read on the student's behalf (CPU counts, limits).
_SYSTEM_READS = ("/dev/null", "/dev/urandom", "/sys/fs/cgroup",
                 "/sys/devices/system/cpu")


@functools.cache
def status() -> tuple[bool, str]:
    """(whether submissions can be sandboxed here, why not)."""
    if not sys.platform.startswith("linux"):
        return False, f"no sandbox on {sys.platform} (bubblewrap is Linux)"
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return False, (f"bubblewrap is not installed (`{INSTALL}`, or "
                       f"`make grader-deps`)")
    probe = [bwrap, *_namespaces(), "--ro-bind", "/", "/", "--proc",
             "/proc", "--dev", "/dev", "true"]
    try:
        r = subprocess.run(probe, capture_output=True, text=True,
                           timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return False, f"bwrap does not run here ({e})"
    if r.returncode != 0:
        why = (r.stderr or r.stdout).strip().splitlines()
        return False, (f"bwrap cannot create its namespaces here "
                       f"({why[-1] if why else r.returncode}); on "
                       f"Ubuntu 24.04 and later allow unprivileged user "
                       f"namespaces for bwrap (AppArmor) or grade as "
                       f"root")
    return True, ""


def _namespaces() -> list[str]:
    return ["--unshare-all", "--die-with-parent", "--new-session",
            "--uid", "1000", "--gid", "1000", "--cap-drop", "ALL"]


def _python_roots() -> list[str]:
    """The folders the Python interpreter and its packages live in."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix,
             sys.base_exec_prefix}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p:
            roots.add(p)
    exe = os.path.realpath(sys.executable)
    roots.add(str(Path(exe).parent.parent))
    out = []
    for r in sorted(roots, key=len):
        r = os.path.realpath(r)
        if r in ("/", "/usr") or r.startswith("/usr/") or \
                any(r == o or r.startswith(o + "/") for o in out):
            continue
        out.append(r)
    return out


def python_roots() -> list[str]:
    """Public: the folders the checks' process may read (outside /usr)."""
    return _python_roots()


def command(work: Path, package_parent: Path, sandbox: bool,
            threads: int, extra_env: dict[str, str] | None = None
            ) -> tuple[list[str], dict[str, str] | None, dict]:
    """(argv, env, request settings) to run the checks' process on a
    submission whose working folder is ``work`` (made by the caller,
    with ``home/`` and ``etc-passwd`` in it). ``package_parent``: the
    folder that holds the package ``d2l_densenet``. ``env`` is None when
    sandboxed (bwrap sets it)."""
    checker = Path(__file__).with_name("classroom_check.py")
    env = {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONNOUSERSITE": "1", "PYTHONHASHSEED": "0",
           "TORCH_HOME": "", "KMP_WARNINGS": "0"}
    for key in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY",
                "DNNL_MAX_CPU_ISA"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    env.update(extra_env or {})
    if not sandbox:
        home = work / "home"
        env.update(HOME=str(home), TMPDIR=str(home / "tmp"),
                   MPLCONFIGDIR=str(home / ".config" / "matplotlib"),
                   TORCH_HOME=str(home / ".cache" / "torch"),
                   PATH=os.environ.get("PATH", "/usr/bin:/bin"))
        settings = dict(workdir=str(home / "work"),
                        path=[str(package_parent)],
                        read_roots=[*_python_roots(), str(package_parent),
                                    "/usr/share", "/usr/lib",
                                    "/usr/lib64", *_SYSTEM_READS],
                        write_roots=[str(work)])
        return [sys.executable, "-s", str(checker)], env, settings
    bwrap = shutil.which("bwrap")
    # /proc, /dev and an empty /tmp first: a later --tmpfs /tmp would hide
    # a virtual environment or Python installed under /tmp (bound below)
    argv = [bwrap, *_namespaces(), "--proc", "/proc", "--dev", "/dev",
            "--tmpfs", "/tmp", "--ro-bind", "/usr", "/usr"]
    for link in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        p = Path("/") / link
        if p.is_symlink():
            argv += ["--symlink", os.readlink(p), f"/{link}"]
        elif p.is_dir():
            argv += ["--ro-bind", str(p), f"/{link}"]
    for f in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime",
              "/etc/nsswitch.conf"):
        if os.path.exists(f):
            argv += ["--ro-bind", f, f]
    if os.path.isdir("/etc/ld.so.conf.d"):
        argv += ["--ro-bind", "/etc/ld.so.conf.d", "/etc/ld.so.conf.d"]
    for r in _python_roots():
        argv += ["--ro-bind", r, r]
    argv += ["--ro-bind", str(work / "etc-passwd"), "/etc/passwd",
             "--ro-bind", str(work / "etc-group"), "/etc/group",
             "--ro-bind", str(package_parent / "d2l_densenet"),
             f"{PACKAGES}/d2l_densenet",
             "--ro-bind", str(checker), CHECKER,
             "--bind", str(work / "home"), HOME,
             "--chdir", WORK, "--clearenv"]
    env.update(HOME=HOME, TMPDIR="/tmp", USER="student",
               MPLCONFIGDIR=f"{HOME}/.config/matplotlib",
               TORCH_HOME=f"{HOME}/.cache/torch",
               PATH="/usr/local/bin:/usr/bin:/bin")
    for k, v in env.items():
        argv += ["--setenv", k, v]
    # the virtual environment's python (its pyvenv.cfg makes it one)
    argv += [sys.executable, "-s", CHECKER]
    settings = dict(workdir=WORK, path=[PACKAGES],
                    read_roots=[*_python_roots(), PACKAGES, "/usr/share",
                                "/usr/lib", "/usr/lib64", *_SYSTEM_READS],
                    write_roots=[HOME, "/tmp"])
    return argv, None, settings


@functools.cache
def _font_cache() -> tuple[Path, ...]:
    """matplotlib's font list of this environment (built once here)."""
    try:
        import matplotlib
        import matplotlib.font_manager  # noqa: F401 - builds the list
        return tuple(Path(matplotlib.get_cachedir()).glob("fontlist*"))
    except Exception:  # no matplotlib: nothing to copy
        return ()


def prepare(work: Path) -> None:
    """The throw-away folders and files of one submission's run:
    ``home/`` (with ``work/``, ``tmp/`` and the configuration folders)
    and a fake ``/etc/passwd``."""
    home = work / "home"
    for sub in ("work", "tmp", ".config/matplotlib", ".cache"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    for f in _font_cache():  # else matplotlib rebuilds it every time
        shutil.copyfile(f, home / ".config" / "matplotlib" / f.name)
    (work / "etc-passwd").write_text(
        f"student:x:1000:1000:student:{HOME}:/bin/false\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        encoding="utf-8")
    (work / "etc-group").write_text("student:x:1000:\n", encoding="utf-8")
