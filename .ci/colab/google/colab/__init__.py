"""Stand-in for Colab's ``google.colab`` (make test-colab).

The notebooks' first cell installs the package when ``google.colab`` is
in ``sys.modules``, as it is in every Colab kernel; the kernel of
``make test-colab`` imports this module at start-up to look the same.
``google`` stays a namespace package (no ``google/__init__.py``), so
other ``google.*`` packages still import."""
