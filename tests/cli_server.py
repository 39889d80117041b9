"""Run ``saetool`` commands that shell scripts start, each in a child forked from one
interpreter that imported torch and transformers once (tests/test_examples.py).

``python tests/cli_server.py SOCKET BIN`` imports :data:`helpers.PRELOAD`, writes a
``saetool`` client into the folder BIN, prints ``ready`` and serves on the Unix socket
SOCKET. The client sends its arguments, environment, folder and file descriptors 0-2;
the server forks, the child runs the command on those descriptors exactly as
``python -m saetool`` would (:func:`helpers.run_saetool_here`) and sends back its exit
code. Commands in a pipeline run at once, each in its own child.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import PRELOAD, run_saetool_here  # noqa: E402

CLIENT = """#!{python} -S
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect({socket!r})
socket.send_fds(s, [json.dumps({{"args": sys.argv[1:], "env": dict(os.environ), "cwd": os.getcwd()}}).encode()], [0, 1, 2])
reply = s.recv(16)
sys.exit(int(reply) if reply else 137)  # no reply: the command was killed
"""


def serve(path: str, bin_dir: str) -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    client = Path(bin_dir) / "saetool"
    client.write_text(CLIENT.format(python=sys.executable, socket=path))
    client.chmod(0o755)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server.bind(path)
    server.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
        if os.fork() == 0:
            server.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            request = json.loads(message)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
                os.close(fd)
            code = run_saetool_here(request["args"], request["env"], request["cwd"])
            conn.send(str(code).encode())
            os._exit(code)
        conn.close()
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])
