"""mode="model": the code runs once, reads any shard, and sets the output.

The table is cut into shards, spilled to Arrow files in a temp dir and served
by a DataServer for the life of the program; the code (a pyjava code string,
or a callable taking the context) may read them itself, hand them to Ray tasks
or actors, or take the whole table as a Ray Dataset. What it sets with
``set_output`` / ``build_result`` (or returns) becomes the output table.
It runs on the driver (run_in="driver") or in one Spark task
(run_in="executor"); either way the server and the files are gone when it ends.
"""

from __future__ import annotations

import ast
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from .arrow_files import write_shard_file
from .code_string import execute_code
from .context import _UNSET, PythonContext
from .data_server import DataServer
from .errors import ResultSchemaError, UserCodeError
from .runners import coalesce
from .user_code import describe_callable, job_environment, user_traceback


def requested_address_in(code: str) -> Any:
    """The address literal a code string passes to ``RayContext.connect``, or _UNSET.

    Model-mode code runs once, so its Ray connection must be made before it
    starts; the address is read from the source instead of running it twice.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return _UNSET  # execute_code reports it with the line
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "connect":
            address = (
                node.args[1]
                if len(node.args) > 1
                else next((k.value for k in node.keywords if k.arg == "address"), None)
            )
            if isinstance(address, ast.Constant) and (address.value is None or isinstance(address.value, str)):
                return address.value
    return _UNSET


@dataclass
class ModelProgram:
    """One model-mode job: the code, the output schema and how to serve the table."""

    code: str | Callable[..., Any]
    schema: pa.Schema
    conf_strings: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    server_host: str | None = None  # None: this node's address as Ray sees it
    idle_timeout_s: float = 300.0
    max_bytes: int = 32 << 20
    max_rows: int = 1_000_000
    spill_parent: str | None = None

    def run(self, batches: Iterable[pa.RecordBatch], input_schema: pa.Schema) -> list[pa.Table]:
        """Serve the batches as shards, run the code once, and return its output tables."""
        with tempfile.TemporaryDirectory(prefix="spark-ray-shards-", dir=self.spill_parent) as shard_dir:
            with DataServer(self._host(), self.idle_timeout_s) as server:
                handles = [
                    server.add_shard(index, write_shard_file(shard_dir, index, shard))
                    for index, shard in enumerate(coalesce(batches, self.max_bytes, self.max_rows))
                ]
                context = PythonContext(
                    self.conf_strings, shards=handles, schema=self.schema, input_schema=input_schema
                )
                with job_environment(self.env):
                    self._run_code(context)
        if not context.outputs:
            raise UserCodeError(
                "model-mode code set no output: call context.set_output([[pd.Series, ...]]) or "
                "context.build_result(rows), or return a pandas DataFrame or Arrow table from your function"
            )
        return context.outputs

    def _run_code(self, context: PythonContext) -> None:
        if isinstance(self.code, str):
            execute_code(self.code, context)
            return
        try:
            result = self.code(context)
        except (UserCodeError, ResultSchemaError):
            raise
        except Exception as error:
            label = describe_callable(self.code)
            raise UserCodeError(f"{label} raised {type(error).__name__}: {error}", user_traceback(error)) from None
        if result is not None:
            context.set_output(result)

    def _host(self) -> str:
        if self.server_host:
            return self.server_host
        import ray

        return ray.util.get_node_ip_address() if ray.is_initialized() else "127.0.0.1"


def model_partition_function(
    program_blob: bytes, input_schema: pa.Schema, ray_spec: Any
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The mapInArrow function that runs a model program inside one Spark task."""

    def run_model_partition(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import cloudpickle

        if ray_spec is not None:
            from .cluster import ensure_worker_ray

            ensure_worker_ray(ray_spec)
        program: ModelProgram = cloudpickle.loads(program_blob)
        for table in program.run(batches, input_schema):
            yield from table.to_batches()

    run_model_partition.__name__ = run_model_partition.__qualname__ = "ray_transform[model]"
    return run_model_partition
