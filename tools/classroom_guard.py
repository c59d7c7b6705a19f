"""What the classroom grader lets a submission's code do, and what it
flags on reading the code (tools/classroom_grade.py).

``inspect_code(cells)`` reads the student's code cells (no code runs)
and returns the reasons to flag the submission: a route to the package
other than a plain import (``importlib``, ``__import__``, ``sys.modules``,
``getattr`` on a module, the package's name in a string), the grader's
internals (``otter.test_files`` and friends), introspection that reaches
the grader (``__subclasses__``, ``__globals__``, ``gc``, frames),
``eval``/``exec``/``compile``, changing a module's attribute
(``torch.allclose = ...``), files and processes. The checks' process
(tools/classroom_check.py) enforces the same at run time; a flag asks
the teacher to look, it does not change the score.
"""
from __future__ import annotations

import ast
import re

#: Modules student code may import (and their submodules); ``os``,
#: ``sys``, ``glob`` and ``otter`` are stand-ins in the checks' process.
ALLOWED_MODULES = (
    "torch", "torchvision", "torchinfo", "numpy", "pandas", "matplotlib",
    "d2l_densenet", "IPython.display", "math", "cmath", "random",
    "statistics", "collections", "itertools", "functools", "operator",
    "copy", "time", "datetime", "typing", "dataclasses", "fractions",
    "decimal", "string", "re", "json", "textwrap", "pprint", "enum",
    "abc", "numbers", "contextlib", "warnings", "heapq", "bisect",
)
STAND_INS = ("os", "os.path", "sys", "glob", "otter")
#: The modules and classes whose attributes the checks' process watches
#: (``NAME.*``: with submodules).
WATCHED = ("torch", "torch.nn.*", "torch.functional", "torch._tensor",
           "torch.utils.checkpoint", "torch.utils.flop_counter",
           "torch.autograd.*", "torch.testing.*", "d2l_densenet.*",
           "torchvision.models.*", "math", "copy", "types", "inspect",
           "functools", "operator")
_PACKAGE = "d2l_densenet"
#: Names whose mere use is a flag.
_NAMES = {
    "__import__": "calls __import__ (a route to any module)",
    "importlib": "uses importlib (a route to any module)",
    "eval": "runs code from a string (eval)",
    "exec": "runs code from a string (exec)",
    "compile": "compiles code from a string (compile)",
    "globals": "reads globals()",
    "locals": "reads locals()",
    "vars": "reads an object's namespace (vars)",
    "breakpoint": "calls breakpoint()",
    "__builtins__": "uses __builtins__",
    "__loader__": "uses __loader__",
    "__spec__": "uses __spec__",
    "open": "opens files",
}
#: Attributes any code may use; other dunder attributes are a flag.
_DUNDER_OK = {"__init__", "__name__", "__class__", "__len__", "__call__",
              "__doc__", "__getitem__", "__setitem__", "__iter__",
              "__next__", "__repr__", "__str__", "__eq__", "__hash__",
              "__enter__", "__exit__", "__version__", "__qualname__",
              "__contains__", "__add__", "__mul__", "__lt__", "__le__",
              "__gt__", "__ge__", "__ne__", "__bool__", "__float__",
              "__int__", "__neg__", "__sub__", "__truediv__",
              "__floordiv__", "__mod__", "__pow__", "__matmul__"}
#: Attributes that lead from an allowed module to the interpreter.
_LEAKS = {"sys", "os", "builtins", "importlib", "subprocess", "gc",
          "ctypes", "inspect", "socket", "shutil", "pathlib", "io",
          "_C", "_dynamo", "hub", "cpp_extension", "multiprocessing"}
_FETCH = {"get", "values", "items", "keys", "pop", "setdefault",
          "copy"}
#: Methods that decide how a value compares: a class defining them can
#: make ``assert got == want`` pass whatever ``want`` is.
_COMPARISONS = {"__eq__", "__ne__", "__lt__", "__le__", "__gt__",
                "__ge__", "__bool__", "__instancecheck__",
                "__subclasscheck__", "__hash__"}


def _top(name: str) -> str:
    return name.split(".")[0]


def allowed(name: str) -> bool:
    return any(name == a or name.startswith(a + ".")
               for a in ALLOWED_MODULES + STAND_INS)


def _source(cell: str) -> str:
    """A cell's code with IPython's magic and shell lines blanked."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in cell.splitlines())


class _Inspector(ast.NodeVisitor):
    def __init__(self, modules: set[str]):
        self.flags: list[str] = []
        self.modules = modules  # names bound to imported modules
        self.cell = 0

    def flag(self, node, reason: str) -> None:
        line = getattr(node, "lineno", 0)
        text = f"{reason} (cell {self.cell}, line {line})"
        if text not in self.flags:
            self.flags.append(text)

    # imports -------------------------------------------------------------
    def visit_Import(self, node):
        for a in node.names:
            self._import(node, a.name)
            self.modules.add(a.asname or _top(a.name))

    def visit_ImportFrom(self, node):
        mod = node.module or ""
        if node.level:
            self.flag(node, "uses a relative import")
            return
        self._import(node, mod)
        for a in node.names:
            full = f"{mod}.{a.name}"
            if _top(mod) != "otter" and a.name in _LEAKS:
                self.flag(node, f"imports {full}")
            self.modules.add(a.asname or a.name)

    def _import(self, node, name: str) -> None:
        if _top(name) == "otter" and name != "otter":
            self.flag(node, f"imports {name} (the grader's internals)")
        elif not allowed(name):
            self.flag(node, f"imports {name}, which grading does not "
                            f"allow")

    # names and attributes ------------------------------------------------
    def visit_Name(self, node):
        if node.id in _NAMES:
            self.flag(node, _NAMES[node.id])

    def visit_Attribute(self, node):
        attr = node.attr
        if attr.startswith("__") and attr.endswith("__") and \
                attr not in _DUNDER_OK:
            self.flag(node, f"uses .{attr}")
        elif attr in _LEAKS and not (isinstance(node.value, ast.Name) and
                                     node.value.id in ("os", "sys")):
            self.flag(node, f"reaches .{attr} through another module")
        elif attr == "modules" and isinstance(node.value, ast.Name) and \
                node.value.id == "sys":
            pass  # judged where it is used (visit_Subscript, visit_Call)
        elif isinstance(node.value, ast.Name) and node.value.id == \
                "otter" and attr != "Notebook":
            self.flag(node, f"uses otter.{attr} (the grader's internals)")
        elif attr in _NAMES and attr in ("__import__", "importlib"):
            self.flag(node, _NAMES[attr])
        self.generic_visit(node)

    def visit_Subscript(self, node):
        if _is_sys_modules(node.value):
            self.flag(node, "takes a module out of sys.modules")
        self.generic_visit(node)

    def visit_Call(self, node):
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr in _FETCH and \
                _is_sys_modules(f.value):
            self.flag(node, "takes a module out of sys.modules")
        if isinstance(f, ast.Name) and f.id == "type" and len(
                node.args) == 3:
            self.flag(node, "creates a class with type(name, bases, "
                            "namespace)")
        if isinstance(f, ast.Name) and f.id in ("getattr", "setattr",
                                                "delattr", "hasattr"):
            name = node.args[1] if len(node.args) > 1 else None
            literal = isinstance(name, ast.Constant) and isinstance(
                name.value, str)
            target = node.args[0] if node.args else None
            if not literal:
                self.flag(node, f"calls {f.id} with a computed name")
            elif name.value.startswith("__"):
                self.flag(node, f"calls {f.id}(..., {name.value!r})")
            elif isinstance(target, ast.Name) and \
                    target.id in self.modules:
                self.flag(node, f"calls {f.id} on the module "
                                f"{target.id}")
        self.generic_visit(node)

    def visit_Constant(self, node):
        if isinstance(node.value, str) and (
                _PACKAGE in node.value or re.search(
                    r"\botter\.(?!Notebook)", node.value)):
            what = _PACKAGE if _PACKAGE in node.value else "otter"
            self.flag(node, f"names {what} in a string (a route to "
                            f"import it)")

    # changes to modules --------------------------------------------------
    def _target(self, node, verb: str) -> None:
        root = node
        while isinstance(root, (ast.Attribute, ast.Subscript)):
            root = root.value
        if isinstance(node, ast.Attribute) and isinstance(root, ast.Name) \
                and root.id in self.modules:
            self.flag(node, f"{verb} {ast.unparse(node)}, an attribute of "
                            f"an imported module")

    def visit_Assign(self, node):
        for t in node.targets:
            for el in (t.elts if isinstance(t, (ast.Tuple, ast.List))
                       else [t]):
                self._target(el, "changes")
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        self._target(node.target, "changes")
        self.generic_visit(node)

    def visit_AnnAssign(self, node):
        self._target(node.target, "changes")
        self.generic_visit(node)

    def visit_Delete(self, node):
        for t in node.targets:
            self._target(t, "deletes")
        self.generic_visit(node)

    # values that pass a check without being right ---------------------
    def visit_ClassDef(self, node):
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                    and item.name in _COMPARISONS:
                self.flag(item, f"defines {node.name}.{item.name} (a value "
                                f"that may equal anything)")
            elif isinstance(item, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id in _COMPARISONS
                    for t in item.targets):
                self.flag(item, f"sets {node.name}'s comparison (a value "
                                f"that may equal anything)")
        self.generic_visit(node)


def _is_sys_modules(node) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "modules" and (
        (isinstance(node.value, ast.Name) and node.value.id == "sys")
        or (isinstance(node.value, ast.Attribute)
            and node.value.attr == "sys"))


def inspect_code(cells: list[tuple[int, str]]) -> list[str]:
    """The reasons to flag a submission's code: ``cells`` are
    ``(number, source)`` in notebook order. A cell that does not parse
    gives no flags (its error is reported when it runs)."""
    inspector = _Inspector(set())
    for number, source in cells:
        try:
            tree = ast.parse(_source(source))
        except (SyntaxError, ValueError):
            continue
        inspector.cell = number
        inspector.visit(tree)
    return inspector.flags
