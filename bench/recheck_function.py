"""The recheck's function side in a process of its own: ``python -m bench.recheck_function FD``.

On AWS the function that re-decides and the services it calls never share a
CPU. On the local stack the emulator serves from the benchmark's process
(its gap fills patch moto there), so the withdrawals run here instead, as the
API function would: the composition root built from the environment
``LocalStack.client_env`` gives, talking to the emulator over HTTP. The job
comes as JSON on stdin; progress marks and the result go as JSON lines to
file descriptor ``FD`` (stdout carries the handlers' logs, as in Lambda).
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Any


def _writer(fd: int) -> IO[str]:
    return os.fdopen(fd, "w", buffering=1)


def main() -> None:
    out = _writer(int(sys.argv[1]))
    job: dict[str, Any] = json.loads(sys.stdin.read())

    import boto3

    from bench.stack_worker import RequestCounter, _Clock, _Rounds, install
    from quitclaim import bootstrap

    counter = RequestCounter()
    install(counter)
    bootstrap.reset_container()
    bootstrap.set_clock(_Clock())
    registry = bootstrap.registry_service()
    recheck = registry.recheck
    if recheck is None:
        raise RuntimeError("the registry has no recheck")

    def mark(name: str) -> None:
        out.write(json.dumps({"mark": name}) + "\n")

    rounds = _Rounds(
        registry,
        job["subject"],
        boto3.client("s3"),
        job["library"],
        job["assets"],
        counter,
        mark=mark,
    )
    batched_chunk = recheck.chunk
    modes = {"batched": batched_chunk, "per_asset": 1}
    found: dict[str, dict[str, list[float]]] = {
        mode: {"withdrawal_s": [], "withdrawal_cpu_s": [], "restore_s": [], "restore_cpu_s": []}
        for mode in modes
    }
    requests: dict[str, dict[str, float]] = {}
    consent_id = job["consent_id"]
    for _ in range(job["repeats"]):
        for mode, chunk in modes.items():
            recheck.chunk = chunk
            rounds.mode = mode
            consent_id = rounds.withdraw_and_restore(consent_id, found[mode])
            requests[mode] = rounds.requests
    out.write(json.dumps({"chunk": batched_chunk, "found": found, "requests": requests}) + "\n")
    out.close()


if __name__ == "__main__":
    main()
