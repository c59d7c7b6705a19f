"""The checks' process of the classroom grader: runs one submission's
code and every check of its assignment, and reports the results.

tools/classroom_grade.py starts it once per submission (inside the
sandbox of tools/classroom_sandbox.py where there is one) and writes a
JSON request to its standard input: the student's code cells, the
checks' source (public and hidden), the own-work helper, the modules
student code may import and the folders it may read and write. The
checks therefore never lie on a disk the student's code can see; this
process reads them before any student code runs and keeps only their
compiled form.

Then it

1. runs the student's code cells in order in a namespace of their own
   (the module ``__main__``; this process's own state is not reachable
   from it), each cell compiled as ``<cell N>``, errors recorded and the
   next cell run (as a notebook with ``allow_errors``);
2. runs each check (otter's test-function format: the question's
   ``test_*`` functions, arguments looked up in the student's namespace)
   in this process, outside the student's namespace;
3. writes one line per result to the pipe that was its standard output
   (``NONCE JSON``); what student code prints is captured, not sent.

While student code runs a guard is on (it cannot be turned off from
Python code: ``sys.addaudithook``):

* imports go through a gate: torch, numpy, math and the like, the
  package ``d2l_densenet``; ``os``, ``sys``, ``glob`` and ``otter``
  are harmless stand-ins (what the handout's first cell needs); anything
  else (``importlib``, ``builtins``, ``gc``, ``inspect``, ``ctypes``,
  ``subprocess``, ``socket``, otter's internals) fails with ImportError
  and a flag;
* an audit hook refuses, when student code is on the stack, files
  outside the folders it may use, listing folders such as ``/proc``,
  sockets, new processes, ``ctypes``, and (from student code itself)
  frame and garbage-collector introspection; each refusal is a flag;
* the package's functions and methods are wrapped: when code that a
  check declared graded (``_own_work(name, obj)``) reaches one of them,
  by whatever route (``importlib``, ``sys.modules``, ``getattr`` on a
  module, a stored reference), that check fails with a "not your code"
  message and the submission is flagged;
* the modules and classes the checks rely on (torch, torch.nn, the
  package, builtins, ...) are snapshotted before student code runs;
  after every cell run and every check, anything student code changed
  there is flagged and put back, and a check during which it happened
  fails.
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import io
import json
import os
import sys
import time
import types

#: Events refused when student code is anywhere on the stack.
_NETWORK = ("socket.", "urllib.Request", "http.client.", "ftplib.",
            "smtplib.", "poplib.", "imaplib.", "nntplib.", "telnetlib.",
            "webbrowser.")
_PROGRAMS = ("subprocess.Popen", "os.system", "os.exec", "os.spawn",
             "os.posix_spawn", "os.fork", "os.forkpty", "os.kill",
             "os.killpg", "pty.spawn", "os.startfile", "os.add_dll")
_NATIVE = ("ctypes.", "mmap.", "resource.setrlimit", "resource.prlimit",
           "signal.pthread_kill", "sys.addaudithook", "setopencodehook",
           "pickle.find_class", "builtins.input",
           "_thread.start_new_thread",
           "sys.unraisablehook", "sys.excepthook")
_WRITES = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod",
           "os.chown", "os.link", "os.symlink", "os.truncate", "os.utime",
           "os.chflags", "os.lchflags", "shutil.copyfile",
           "shutil.copymode", "shutil.copystat", "shutil.copytree",
           "shutil.rmtree", "shutil.move", "shutil.make_archive",
           "shutil.unpack_archive", "tempfile.mkstemp",
           "tempfile.mkdtemp"}
_LISTS = {"os.listdir", "os.scandir", "glob.glob", "glob.glob/2",
          "os.chdir"}
#: Events refused when student code itself (the innermost frame) makes
#: them: introspection that reaches the checks or this process.
_INTROSPECTION = {"sys._getframe", "sys._current_frames", "sys.settrace",
                  "sys.setprofile", "gc.get_objects", "gc.get_referrers",
                  "gc.get_referents", "object.__getattr__",
                  "object.__setattr__", "object.__delattr__",
                  "code.__new__", "function.__new__",
                  "sys.set_asyncgen_hooks", "sys._getframemodulename",
                  "code.replace", "exec", "compile"}
#: What the stand-in modules offer (the handout's first cell uses them).
_OS_PATH = ("exists", "isfile", "isdir", "join", "basename", "dirname",
            "getmtime", "splitext", "abspath", "sep")
_SYS_ATTRS = ("version", "version_info", "platform", "maxsize",
              "float_info", "byteorder", "implementation")
_OUTPUT_LIMIT = 20_000
_MESSAGE_LIMIT = 4_000


class _Flags:
    """The reasons to flag a submission, each once, in order."""

    def __init__(self):
        self.items: list[str] = []
        self.during: list[str] = []  # since the current check began

    def add(self, reason: str) -> None:
        if reason not in self.items:
            self.items.append(reason)
        self.during.append(reason)


class _Capture(io.TextIOBase):
    """What student code prints: kept (the last part), never sent on."""

    def __init__(self):
        self.parts: list[str] = []
        self.size = 0

    def writable(self):
        return True

    def write(self, s):
        s = str(s)
        self.parts.append(s)
        self.size += len(s)
        while self.size > 2 * _OUTPUT_LIMIT and len(self.parts) > 1:
            self.size -= len(self.parts.pop(0))
        return len(s)

    def text(self) -> str:
        return "".join(self.parts)[-_OUTPUT_LIMIT:]


def _module_ok(name: str, allowed) -> bool:
    return any(name == a or name.startswith(a + ".") for a in allowed)


def _watched(name: str, watch) -> bool:
    """``watch``: module names; ``NAME.*`` also covers its submodules."""
    return any(name == w or (w.endswith(".*") and (
        name == w[:-2] or name.startswith(w[:-1]))) for w in watch)


#: The messages students read (the request may give them in Chinese).
TEXTS = {
    "where": " (raised in your code: cell {cell}, line {line}{inside})",
    "inside": ", in {fn}",
    "not_yours": ("{name} is not your code: it calls {target}{via}. "
                  "Write it in its cell of this notebook; imported code "
                  "earns no points"),
    "via": " (through {inner})",
    "changed": ("your code changed {what} while this check ran: the "
                "check does not count"),
}


def _strip_checks(source: str) -> ast.Module:
    """A test file's AST without otter's import (``test_case`` is given)
    and without the own-work helper the build put into each test (this
    process gives its own, which also tells the guard what is graded)."""
    tree = ast.parse(source)
    body = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "") \
                .startswith("otter"):
            continue
        if isinstance(node, ast.FunctionDef):
            node.body = [n for n in node.body if not (
                isinstance(n, ast.FunctionDef) and n.name == "_own_work")] \
                or [ast.Pass()]
        body.append(node)
    tree.body = body
    return tree


def _resolve_points(total, cases) -> None:
    """otter's rule: a question's points are split evenly among the test
    cases that give none."""
    if isinstance(total, list):
        for c, p in zip(cases, total, strict=False):
            c["points"] = float(p)
        return
    given = [c["points"] for c in cases if c["points"] is not None]
    free = [c for c in cases if c["points"] is None]
    if total is None:
        for c in free:
            c["points"] = 1.0
        return
    left = float(total) - sum(given)
    for c in free:
        c["points"] = left / len(free)


def _describe(e: BaseException, cell_names: dict, texts=TEXTS) -> str:
    """The whole message of an exception, with where in the student's
    code it was raised."""
    try:
        text = str(e)
    except Exception:  # a student's exception whose str() fails
        text = ""
    msg = text if isinstance(e, AssertionError) and text else (
        f"{type(e).__name__}: {text}" if text else type(e).__name__)
    where, tb = None, e.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename in cell_names:
            where = (cell_names[code.co_filename], tb.tb_lineno,
                     code.co_name)
        tb = tb.tb_next
    if where and not isinstance(e, AssertionError):
        cell, line, fn = where
        inside = "" if fn == "<module>" else texts["inside"].format(fn=fn)
        msg += texts["where"].format(cell=cell, line=line, inside=inside)
    return msg


def main() -> int:  # noqa: C901 - one closure keeps the state unreachable
    request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    os.close(0)
    results = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # anything else written to fd 1 goes to stderr
    nonce = request.pop("nonce")

    def emit(kind, **data):
        results.write(f"{nonce} {json.dumps(dict(kind=kind, **data))}\n")
        results.flush()

    sys.dont_write_bytecode = True
    sys.path[:0] = request["path"]
    os.chdir(request["workdir"])
    allowed = tuple(request["allowed"])
    read_roots = tuple(os.path.realpath(p) for p in request["read_roots"])
    write_roots = tuple(os.path.realpath(p)
                        for p in request["write_roots"])
    flags = _Flags()
    capture = _Capture()
    texts = dict(TEXTS, **request.get("texts", {}))
    start = time.perf_counter()

    # --- what the checks need, imported before any student code ------
    import torch
    torch.set_num_threads(int(request.get("threads") or 1))
    # The package imports its modules on first use (PEP 562): load every
    # one now, so that all the checks may use exists, and is guarded and
    # snapshotted, before any student code runs.
    import importlib

    import d2l_densenet  # loaded (and guarded) before students
    for name in d2l_densenet._SUBMODULES:
        importlib.import_module(f"d2l_densenet.{name}")
    for name in d2l_densenet.__all__:
        getattr(d2l_densenet, name)
    for mod in request.get("preload", []):
        try:
            __import__(mod)
        except Exception as e:  # a check will fail and say so
            emit("note", text=f"could not import {mod}: {e}")
    package = "d2l_densenet"
    package_dir = os.path.dirname(sys.modules[package].__file__) + os.sep
    graded: dict = {}  # code object -> (graded name, allow)
    violations: list = []

    def wrap(func, qual, modname):
        def guarded(*args, **kwargs):
            if graded:
                frame, inner = sys._getframe(1), None
                while frame is not None:
                    code = frame.f_code
                    if code in graded:
                        name, allow = graded[code]
                        if not any(qual == a or qual.startswith(a + ".")
                                   for a in allow):
                            violations.append((name, inner or name,
                                               f"{modname}.{qual}"))
                        break
                    if code.co_filename.startswith("<check"):
                        break
                    if code.co_filename.startswith("<cell") and \
                            inner is None:
                        inner = code.co_name
                    frame = frame.f_back
            return func(*args, **kwargs)
        for attr in ("__name__", "__qualname__", "__module__", "__doc__"):
            with contextlib.suppress(AttributeError, TypeError):
                setattr(guarded, attr, getattr(func, attr))
        try:
            import inspect
            guarded.__signature__ = inspect.signature(func)
        except (TypeError, ValueError):
            pass
        return guarded

    def guard_package():
        """Wrap every function and method the package defines, and
        point every reference among its modules at the wrapped ones."""
        mods = [(n, m) for n, m in list(sys.modules.items())
                if m is not None and (n == package or
                                      n.startswith(package + "."))]
        wrapped = {}
        for modname, mod in mods:
            for value in list(vars(mod).values()):
                if isinstance(value, types.FunctionType) and \
                        value.__module__ == modname:
                    wrapped[id(value)] = wrap(value, value.__qualname__,
                                              modname)
                elif isinstance(value, type) and \
                        value.__module__ == modname:
                    for k, v in list(vars(value).items()):
                        if isinstance(v, types.FunctionType):
                            setattr(value, k, wrap(v, v.__qualname__,
                                                   modname))
                        elif isinstance(v, (staticmethod, classmethod)):
                            f = v.__func__
                            setattr(value, k, type(v)(wrap(
                                f, f.__qualname__, modname)))
        for _, mod in mods:
            for key, value in list(vars(mod).items()):
                if id(value) in wrapped:
                    setattr(mod, key, wrapped[id(value)])
    guard_package()

    # --- the snapshot of what checks rely on --------------------------
    def watched():
        mods, classes = [], []
        for name, mod in list(sys.modules.items()):
            if mod is None or not isinstance(mod, types.ModuleType):
                continue
            if name == "builtins" or _watched(name, request["watch"]):
                mods.append(mod)
                for v in list(vars(mod).values()):
                    if isinstance(v, type) and getattr(
                            v, "__module__", "") == name:
                        classes.append(v)
        return mods, classes

    watched_mods, watched_classes = watched()
    watched_classes += [torch.Tensor, torch.nn.Parameter]

    def behaviour(v):
        """Whether a value is code the checks may run (functions,
        methods, classes, descriptors): what a patch would replace.
        Plain data (flags, counters, defaults) is state libraries change
        as they run."""
        return callable(v) or isinstance(
            v, (staticmethod, classmethod, property, types.ModuleType))

    def take():
        return ([(m, {k: v for k, v in vars(m).items() if behaviour(v)})
                 for m in watched_mods],
                [(c, {k: v for k, v in vars(c).items() if behaviour(v)})
                 for c in watched_classes])

    snapshot = take()

    def verify() -> list[str]:
        """What student code changed in the watched modules and classes
        (put back)."""
        changed = []
        for m, old in snapshot[0]:
            now = vars(m)
            for k, v in old.items():
                if now.get(k, _Flags) is not v:
                    changed.append(f"{m.__name__}.{k}")
                    setattr(m, k, v)
            for k in [k for k in now if k not in old]:
                if behaviour(now[k]) and not isinstance(
                        now[k], (types.ModuleType, type)):
                    changed.append(f"{m.__name__}.{k}")
                    delattr(m, k)
        for c, old in snapshot[1]:
            now = dict(vars(c))
            for k, v in old.items():
                if now.get(k, _Flags) is not v:
                    changed.append(f"{c.__module__}.{c.__qualname__}.{k}")
                    with contextlib.suppress(AttributeError, TypeError):
                        setattr(c, k, v)
            for k in [k for k in now if k not in old
                      and behaviour(now[k])]:
                changed.append(f"{c.__module__}.{c.__qualname__}.{k}")
                with contextlib.suppress(AttributeError, TypeError):
                    delattr(c, k)
        return changed

    # --- the student's namespace and its stand-in modules -------------
    main_mod = types.ModuleType("__main__")
    ns = main_mod.__dict__
    stubs = {}

    def stub(name, attrs, what):
        m = types.ModuleType(name)
        for k, v in attrs.items():
            setattr(m, k, v)

        def missing(attr, _name=name, _what=what):
            if attr.startswith("__"):
                raise AttributeError(attr)
            flags.add(f"used {_name}.{attr}, which grading does not "
                      f"offer ({_what})")
            raise AttributeError(
                f"{_name}.{attr} is not available while grading")
        m.__getattr__ = missing
        stubs[name] = m
        return m

    class _Grader:
        def check(self, *a, **k):
            return None

        check_all = export = to_pdf = run_plugin = check
    grader = _Grader()

    def notebook(*a, **k):
        return grader
    stub("otter", {"Notebook": notebook}, "the grader's internals")
    os_path = stub("os.path", {k: getattr(os.path, k) for k in _OS_PATH},
                   "file access")
    stub("os", {"path": os_path, "getcwd": os.getcwd, "sep": os.sep,
                "listdir": os.listdir, "makedirs": os.makedirs},
         "file access")
    stub("sys", dict({k: getattr(sys, k) for k in _SYS_ATTRS},
                     modules={}, argv=[""], path=[], stdout=capture,
                     stderr=capture), "the interpreter's internals")
    import glob as _glob
    stub("glob", {"glob": _glob.glob}, "file access")

    real_import = builtins.__import__

    def gate(name, globals=None, locals=None, fromlist=(), level=0):
        if level:
            raise ImportError("relative imports are not available")
        if name in stubs:
            mod = stubs[name]
            if fromlist:
                return mod
            return stubs[name.split(".")[0]] if "." in name else mod
        top = name.split(".")[0]
        if top == "otter":
            flags.add(f"imports {name} (the grader's internals)")
            raise ImportError(f"{name} is not available while grading")
        if not _module_ok(name, allowed):
            flags.add(f"imports {name}, which grading does not allow")
            raise ImportError(
                f"{name} cannot be imported while grading; allowed: "
                f"{', '.join(sorted({a.split('.')[0] for a in allowed}))}")
        mod = real_import(name, globals, locals, fromlist, level)
        for item in fromlist or ():
            value = getattr(mod, item, None)
            if isinstance(value, types.ModuleType) and not _module_ok(
                    value.__name__, allowed):
                flags.add(f"imports {value.__name__} through "
                          f"'from {name} import {item}'")
                raise ImportError(f"{name}.{item} is not available "
                                  f"while grading")
        return mod

    student_builtins = dict(vars(builtins))
    student_builtins["__import__"] = gate

    def refuse_input(*a, **k):
        raise EOFError("there is no keyboard input while grading")
    student_builtins["input"] = refuse_input
    for k in ("exit", "quit", "help", "copyright", "credits", "license"):
        student_builtins.pop(k, None)

    def display(*objs, **k):
        for o in objs:
            print(repr(o), file=capture)
    student_builtins["display"] = display

    class _Shell:
        def __getattr__(self, name):
            def nothing(*a, **k):
                return None
            return nothing
    shell = _Shell()
    student_builtins["get_ipython"] = lambda: shell
    ns.update(__name__="__main__", __builtins__=student_builtins,
              __doc__=None)

    # --- the checks, compiled; their source dropped -------------------
    lang_own_work = request.pop("own_work")
    helper_ns = {"__builtins__": builtins, "__name__": "own_work"}
    exec(compile(lang_own_work, "<check helper>", "exec"), helper_ns)
    base_own_work = helper_ns["_own_work"]

    def codes_of(obj):
        found, todo = [], []
        if isinstance(obj, types.FunctionType):
            todo.append(obj.__code__)
        elif isinstance(obj, type):
            for klass in obj.__mro__:
                if getattr(klass, "__module__", None) != "__main__":
                    continue
                for v in vars(klass).values():
                    f = getattr(v, "__func__", v)
                    if isinstance(v, property):
                        todo += [g.__code__ for g in (v.fget, v.fset)
                                 if isinstance(g, types.FunctionType)]
                    elif isinstance(f, types.FunctionType):
                        todo.append(f.__code__)
        while todo:
            code = todo.pop()
            found.append(code)
            todo += [c for c in code.co_consts
                     if isinstance(c, types.CodeType)]
        return found

    def own_work(name, obj, allow=(), pure=False):
        if obj is not None and obj is not ...:
            for code in codes_of(obj):
                graded.setdefault(code, (name, tuple(allow)))
        return base_own_work(name, obj, allow, pure)

    class test_case:  # noqa: N801 - otter's name
        def __init__(self, name=None, points=None, hidden=False,
                     success_message=None, failure_message=None):
            self.name, self.points, self.hidden = name, points, hidden

        def __call__(self, func):
            self.func = func
            return self

    questions = []
    for q in request.pop("tests"):
        env = {"__builtins__": builtins, "__name__": f"check_{q['name']}",
               "test_case": test_case, "_own_work": own_work}
        tree = _strip_checks(q["source"])
        exec(compile(tree, f"<check {q['name']}>", "exec"), env)
        cases = [dict(name=v.func.__name__, hidden=bool(v.hidden),
                      points=v.points, func=v.func)
                 for v in env.values() if isinstance(v, test_case)]
        _resolve_points(env.get("points"), cases)
        questions.append((q["name"], cases))
    del q, tree, env

    # --- the guard -----------------------------------------------------
    armed = [False]
    busy = [False]
    cells = {}  # "<cell N>" -> N

    def student_frame(innermost):
        """Whether student code made the audited call (``innermost``) or
        is anywhere on the stack."""
        frame = sys._getframe(2)  # 0: this, 1: the hook
        if innermost:
            return frame is not None and frame.f_code.co_filename in cells
        while frame is not None:  # innermost first
            name = frame.f_code.co_filename
            if name in cells:
                return True
            if name.startswith(package_dir):  # the package's own doing
                return False
            frame = frame.f_back
        return False

    def inside(path, roots):
        return any(path == r or path.startswith(r.rstrip("/") + "/")
                   for r in roots)

    def path_of(arg):
        if isinstance(arg, bytes):
            arg = os.fsdecode(arg)
        if isinstance(arg, os.PathLike):
            arg = os.fspath(arg)
        if not isinstance(arg, str):
            return None
        return os.path.realpath(arg)

    def refuse(reason, message):
        flags.add(reason)
        raise PermissionError(f"{message} (not allowed while grading)")

    def hook(event, args):
        if not armed[0] or busy[0]:
            return
        busy[0] = True
        try:
            if event in _INTROSPECTION:
                if student_frame(True):
                    what = (f"{event} {args[1]}" if event.startswith(
                        "object.") and len(args) > 1 else event)
                    refuse(f"used {what} (introspection of the grader)",
                           f"{what}")
                return
            if not (event == "open" or event in _LISTS or
                    event in _WRITES or event.startswith(
                        _NETWORK + _PROGRAMS + _NATIVE)):
                return
            if not student_frame(False):
                return
            if event.startswith(_NETWORK):
                refuse("opened a network connection", "network access")
            if event.startswith(_PROGRAMS):
                refuse(f"tried to run a program or signal a process "
                       f"({event})", event)
            if event.startswith(_NATIVE):
                refuse(f"used {event}", event)
            path = path_of(args[0]) if args else None
            if event == "open":
                if args and args[0] == results.fileno():
                    refuse("opened the grader's channel for results",
                           f"open({args[0]})")
                if isinstance(args[0], int):
                    return  # a descriptor it has (tempfile, os.open)
                mode = args[1] if len(args) > 1 else "r"
                flag_bits = args[2] if len(args) > 2 else 0
                writing = (isinstance(mode, str) and any(
                    c in mode for c in "wax+")) or bool(
                    (flag_bits or 0) & (os.O_WRONLY | os.O_RDWR |
                                        os.O_CREAT | os.O_TRUNC))
            else:
                writing = event in _WRITES
            if path is None:
                return
            if writing and not inside(path, write_roots):
                refuse(f"tried to write {path}", f"writing {path}")
            if not writing and not inside(path, read_roots + write_roots):
                refuse(f"tried to read {path}", f"reading {path}")
        finally:
            busy[0] = False

    sys.addaudithook(hook)
    sys.modules["__main__"] = main_mod

    # --- 1. the student's cells ---------------------------------------
    transformer = None
    real_stdout, real_stderr = sys.stdout, sys.stderr
    for cell in request.pop("cells"):
        n, src = cell["index"], cell["source"]
        fname = f"<cell {n}>"
        cells[fname] = n
        if any(line.lstrip().startswith(("%", "!"))
               for line in src.splitlines()):
            if transformer is None:
                from IPython.core.inputtransformer2 import (
                    TransformerManager,
                )
                transformer = TransformerManager()
            src = transformer.transform_cell(src)
        t0 = time.perf_counter()
        error = None
        sys.stdout = sys.stderr = capture
        armed[0] = True
        try:
            code = compile(src, fname, "exec")
            exec(code, ns)
        except BaseException as e:  # the next cell runs, as in Jupyter
            error = _describe(e, cells, texts)
            if isinstance(e, SyntaxError):
                error = (f"SyntaxError: {e.msg} (cell {n}, line "
                         f"{e.lineno})")
        finally:
            armed[0] = False
            sys.stdout, sys.stderr = real_stdout, real_stderr
        if error and len(error) > _MESSAGE_LIMIT:
            error = error[:_MESSAGE_LIMIT] + " [...]"
        emit("cell", index=n, error=error,
             seconds=round(time.perf_counter() - t0, 2))
    changed = verify()
    for c in changed:
        flags.add(f"changed {c}, which the checks use (put back before "
                  f"the checks ran)")
    emit("loaded", seconds=round(time.perf_counter() - start, 2))

    # --- 2. the checks ------------------------------------------------
    for qname, cases in questions:
        for case in cases:
            func = case.pop("func")
            graded.clear()
            violations.clear()
            flags.during = []
            kwargs = {}
            import inspect
            for p in inspect.signature(func).parameters:
                kwargs[p] = ns if p == "env" else ns.get(p)
            t0 = time.perf_counter()
            passed, message = True, ""
            sys.stdout = sys.stderr = capture
            armed[0] = True
            try:
                func(**kwargs)
            except BaseException as e:  # noqa: BLE001 - student code
                passed, message = False, _describe(e, cells, texts)
            finally:
                armed[0] = False
                sys.stdout, sys.stderr = real_stdout, real_stderr
            changed = verify()
            if changed:
                for c in changed:
                    flags.add(f"changed {c} while a check ran (put back)")
                passed, message = False, texts["changed"].format(
                    what=", ".join(changed[:3]))
            if violations:
                name, inner, target = violations[0]
                via = "" if inner == name else texts["via"].format(
                    inner=inner)
                flags.add(f"{name} reached {target} of the package "
                          f"{package}{via}")
                passed, message = False, texts["not_yours"].format(
                    name=name, target=target, via=via)
            if len(message) > _MESSAGE_LIMIT:
                message = message[:_MESSAGE_LIMIT] + " [...]"
            emit("check", question=qname, name=case["name"],
                 hidden=case["hidden"], points=case["points"],
                 passed=passed, message=message,
                 seconds=round(time.perf_counter() - t0, 2),
                 flags=list(dict.fromkeys(flags.during)))
    graded.clear()
    emit("done", flags=flags.items, output=capture.text(),
         seconds=round(time.perf_counter() - start, 2),
         cpu=round(time.process_time(), 2))
    results.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
