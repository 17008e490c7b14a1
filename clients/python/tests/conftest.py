"""A real metaembed cluster for the client's tests: shards, encoders and a
coordinator started from the build ($ME_BIN, else build/release/bin) on
free 127.0.0.1 ports with temporary data dirs, stopped at the end."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
BIN = Path(os.environ.get("ME_BIN") or REPO / "build" / "release" / "bin").resolve()
EMOJI_MODEL = REPO / "models" / "metaembed-emoji.safetensors"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, shards=2, encoder_model=None, coord_args=(), standby=0):
        """shards groups of one replica each, then `standby` more: in the
        map (`group gN standby ENDPOINT`) but outside the placement until a
        reshard grows onto them."""
        self.dir = Path(tempfile.mkdtemp(prefix="metaembed-py-"))
        self.procs = []
        try:
            endpoints = [self._start("metaembed-shard", f"shard{i}", "--data-dir", str(self.dir / f"shard{i}"))
                         for i in range(shards + standby)]
            lines = [f"group g{i} {'standby ' if i >= shards else ''}{ep}" for i, ep in enumerate(endpoints)]
            if encoder_model:
                lines.append("encoders " + self._start("metaembed-encoder", "encoder", "--model", str(encoder_model),
                                                       "--threads", "1"))
            (self.dir / "cluster.conf").write_text("\n".join(lines) + "\n")
            self.http_port = free_port()
            # Ready fast (100 ms heartbeats), but slow to mark a replica down
            # (10 missed: 1 s): on a loaded 2-core CI machine an encoder
            # loading its model can starve a 300 ms liveness window, and no
            # test here kills a shard.
            self.endpoint = self._start("metaembed-coordinator", "coordinator", "--cluster", str(self.dir / "cluster.conf"),
                                        "--heartbeat-ms", "100", "--liveness", "10", *coord_args,
                                        metrics_port=self.http_port)
            self.url = f"http://127.0.0.1:{self.http_port}"
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _start(self, binary, tag, *args, metrics_port=None):
        port = free_port()
        endpoint = f"tcp://127.0.0.1:{port}"
        log = open(self.dir / f"{tag}.log", "wb")
        argv = [str(BIN / binary), "--listen", endpoint, "--metrics-addr",
                f"127.0.0.1:{metrics_port or free_port()}", *args]
        self.procs.append((subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL), log))
        return endpoint

    def _wait_ready(self, seconds=60):
        deadline = time.time() + seconds
        while time.time() < deadline:
            for p, _ in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args[0]} exited with {p.returncode}; logs in {self.dir}")
            try:
                with urllib.request.urlopen(self.url + "/v1/health", timeout=2) as r:
                    if json.loads(r.read()).get("ready"):
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the cluster did not become ready in {seconds} s; logs in {self.dir}")

    def log(self, tag):
        return (self.dir / f"{tag}.log").read_text(errors="replace")

    def stop(self):
        for p, _ in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p, log in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster():
    c = Cluster(shards=2)
    yield c
    c.stop()


@pytest.fixture(scope="session")
def text_cluster():
    if not EMOJI_MODEL.exists():
        pytest.skip(f"{EMOJI_MODEL} not found")
    c = Cluster(shards=1, encoder_model=EMOJI_MODEL)
    yield c
    c.stop()


@pytest.fixture()
def keyed_cluster(tmp_path):
    key = tmp_path / "key"
    key.write_text("py-test-key\n")
    c = Cluster(shards=1, coord_args=("--api-key-file", str(key)))
    yield c
    c.stop()
