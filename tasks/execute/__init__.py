"""The execute stage: untrusted teacher programs run in the sandbox.

sandbox.py runs programs in isolated worker processes (sandbox_worker.py is the file those
processes execute); stage.py is the pipeline stage over samples."""

from tasks.execute.sandbox import SandboxError, execute_programs
from tasks.execute.stage import ExecConfig, Execute

__all__ = ["ExecConfig", "Execute", "SandboxError", "execute_programs"]
