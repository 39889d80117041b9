"""Running one saetool stage as many processes, on ``torch.distributed``.

``torchrun --nproc-per-node N -m saetool extract|train ...`` starts N copies of
the command with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT`` set. The stages call :func:`session` around their work: with
``WORLD_SIZE`` above 1 it joins the process group (``nccl`` when the stage runs
on CUDA, ``gloo`` on the CPU; once per process, left at exit); without it, it yields
``None`` and the stage runs as one process, unchanged.

Nothing here imports torch at module level (``saetool --help`` stays fast).
"""

from __future__ import annotations

import atexit
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from saetool.console import configure, is_verbose
from saetool.errors import SaetoolError

if TYPE_CHECKING:
    import torch

# Deferred imports: rank_info, current and local_device read the environment (the CLI asks them); torch and torch.distributed load when a process group is joined or used.

#: The torchrun variables a rank is described by.
ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
#: How long a collective may wait for the slowest rank. Generous: ranks that finish
#: their share of an extract wait for the others, and a rank that dies is noticed
#: by torchrun (which stops the rest) long before this.
TIMEOUT = timedelta(hours=24)


@dataclass(frozen=True)
class RankInfo:
    """Where this process sits among the processes torchrun started."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def rank_info(environ: dict[str, str] | None = None) -> RankInfo:
    """This process's rank and world size from the torchrun environment
    (rank 0 of 1 when the variables are absent); a one-line error when they are inconsistent."""
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local_rank = int(env.get("LOCAL_RANK", str(rank)))
        local_world = int(env.get("LOCAL_WORLD_SIZE", str(world)))
    except ValueError:
        shown = ", ".join(f"{k}={env.get(k)!r}" for k in ENV_VARS[:4] if k in env)
        raise SaetoolError(f"the torchrun environment is not numeric ({shown})", hint="launch with torchrun, or unset RANK/WORLD_SIZE") from None
    if world < 1 or not 0 <= rank < world or not 0 <= local_rank < max(local_world, 1):
        raise SaetoolError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local_rank}", hint="launch with torchrun, or unset RANK/WORLD_SIZE")
    return RankInfo(rank, world, local_rank, local_world)


def backend_for(device: str) -> str:
    """``nccl`` for CUDA devices, ``gloo`` for the CPU."""
    return "nccl" if str(device).startswith("cuda") else "gloo"


def local_device(device: str, info: RankInfo) -> str:
    """``cuda`` (no index) becomes ``cuda:LOCAL_RANK`` so each rank gets its own GPU."""
    return f"cuda:{info.local_rank}" if str(device) == "cuda" and info.distributed else str(device)


class Group:
    """The process group of one distributed stage, with the few collectives saetool uses."""

    def __init__(self, info: RankInfo, backend: str, device: str) -> None:
        self.info = info
        self.backend = backend
        self.device = device  # where tensors live for the collectives (nccl needs CUDA tensors)

    @property
    def rank(self) -> int:
        return self.info.rank

    @property
    def world_size(self) -> int:
        return self.info.world_size

    @property
    def is_main(self) -> bool:
        return self.info.is_main

    def describe(self) -> dict[str, Any]:
        """What an artifact's provenance records about the run."""
        return {"world_size": self.world_size, "backend": self.backend}

    def barrier(self) -> None:
        import torch.distributed as dist

        if self.backend == "nccl":
            import torch

            dist.barrier(device_ids=[torch.device(self.device).index or 0])
        else:
            dist.barrier()

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order."""
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def all_reduce_(self, tensor: "torch.Tensor", op: str = "sum") -> "torch.Tensor":
        """Reduce ``tensor`` in place over the ranks (``sum``, ``max`` or ``mean``)."""
        import torch.distributed as dist

        on = tensor if tensor.device.type == torch_device_type(self.device) else tensor.to(self.device)
        dist.all_reduce(on, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
        if op == "mean":
            on.div_(self.world_size)
        if on is not tensor:
            tensor.copy_(on)
        return tensor

    def average_(self, tensors: Sequence["torch.Tensor"]) -> None:
        """Replace each tensor by its mean over the ranks, in one flat all-reduce."""
        import torch

        if not tensors:
            return
        flat = torch.cat([t.detach().reshape(-1).to(torch.float32) for t in tensors])
        self.all_reduce_(flat, "mean")
        offset = 0
        for t in tensors:
            n = t.numel()
            t.detach().copy_(flat[offset : offset + n].view_as(t))
            offset += n

    def broadcast_(self, tensors: Sequence["torch.Tensor"], src: int = 0) -> None:
        """Copy rank ``src``'s tensors to every rank (in place)."""
        import torch.distributed as dist

        for t in tensors:
            t = t.detach()  # same storage, outside autograd
            on = t if t.device.type == torch_device_type(self.device) else t.to(self.device)
            dist.broadcast(on, src=src)
            if on is not t:
                t.copy_(on)


def torch_device_type(device: str) -> str:
    return str(device).split(":")[0]


def current() -> Group | None:
    """The group of the running stage (``None`` outside :func:`session` or with one process)."""
    return _CURRENT[0]


_CURRENT: list[Group | None] = [None]


@contextmanager
def session(device: str = "cpu") -> Iterator[Group | None]:
    """Join the torchrun process group (once per process) and make it current for one stage.

    Yields ``None`` when this is a single process (no ``WORLD_SIZE`` above 1).
    Ranks other than 0 are quiet on stderr (warnings and errors still show).
    """
    info = rank_info()
    if not info.distributed:
        yield None
        return
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise SaetoolError("this torch build has no torch.distributed", hint="install a torch build with distributed support")
    backend = backend_for(device)
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise SaetoolError(f"--device {device} under torchrun, but CUDA is not available", hint="use --device cpu (the gloo backend)")
        if info.local_rank >= torch.cuda.device_count():
            raise SaetoolError(f"LOCAL_RANK {info.local_rank} but this node has {torch.cuda.device_count()} GPU(s)", hint="start at most one process per GPU (--nproc-per-node)")
        torch.cuda.set_device(info.local_rank)
    if not dist.is_initialized():
        # joined once per process and left at exit: a second init_process_group after
        # destroy_process_group reads the first group's stale addresses from torchrun's
        # store (gloo then fails with "connectFullMesh ... Connection refused"), so two
        # stages in one script share the group instead
        kw: dict[str, Any] = {"backend": backend, "timeout": TIMEOUT}
        if backend == "nccl":
            kw["device_id"] = torch.device(f"cuda:{info.local_rank}")
        dist.init_process_group(**kw)
        atexit.register(_leave)
    elif dist.get_backend() != backend:
        raise SaetoolError(f"this process already joined a {dist.get_backend()} process group; --device {device} needs {backend}", hint="run stages on one kind of device within one torchrun process")
    coll_device = f"cuda:{info.local_rank}" if backend == "nccl" else "cpu"
    group = Group(info, backend, coll_device)
    if not info.is_main:
        if not is_verbose():
            configure(quiet=True)
    _CURRENT[0] = group
    try:
        yield group
    finally:
        _CURRENT[0] = None


def _leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
