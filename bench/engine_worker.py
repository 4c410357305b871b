"""One engine in its own process, driven over stdin/stdout (JSON lines).

``python -m bench.engine_worker ours|baseline``. The parent decides which
CPU each worker may use and when it runs, so that timed runs of the two
engines alternate on the same core and never overlap. ``baseline`` is plain
face_recognition as its README uses it; importing it flips Pillow's
``LOAD_TRUNCATED_IMAGES`` for the process, one more reason it lives apart.

Commands: ``{"op": "cpus", "cpus": [0]}``, ``{"op": "run", "files": [...],
"encodings": bool}`` (answers seconds, boxes as [left, top, right, bottom)
and, if asked, encodings per file), ``{"op": "quit"}``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

# (boxes, encodings) of one image file.
Analyse = Callable[[Path], tuple[list[list[int]], list[list[float]]]]


def ours() -> Analyse:
    # Exactly what the ingest function runs: the composition root's factory,
    # with the settings of this environment (never constructor defaults).
    from quitclaim.bootstrap import face_engine

    engine = face_engine()

    def analyse(path: Path) -> tuple[list[list[int]], list[list[float]]]:
        faces = engine.analyze(engine.decode(path.read_bytes()))
        return [f.box.as_list() for f in faces], [f.encoding.tolist() for f in faces]

    return analyse


def baseline() -> Analyse:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pkg_resources deprecation, from its models package
        import face_recognition

    def analyse(path: Path) -> tuple[list[list[int]], list[list[float]]]:
        image = face_recognition.load_image_file(str(path))
        locations = face_recognition.face_locations(image)
        # The boxes just found are passed in: without them face_encodings runs
        # the upsampled detector a second time (a slower baseline than anyone
        # would write, which would flatter our speed-up).
        encodings = face_recognition.face_encodings(image, locations)
        # dlib rectangles are inclusive: right/bottom + 1 for exclusive boxes.
        boxes = [[left, top, right + 1, bottom + 1] for (top, right, bottom, left) in locations]
        return boxes, [e.tolist() for e in encodings]

    return analyse


def serve(analyse: Analyse, warm_up: Path | None) -> None:
    if warm_up is not None:
        analyse(warm_up)  # first-call costs (page faults, lazy set-up) are not timed
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command: dict[str, Any] = json.loads(line)
        op = command["op"]
        if op == "quit":
            return
        if op == "cpus":
            os.sched_setaffinity(0, set(command["cpus"]))
            print(json.dumps({"ok": True}), flush=True)
        elif op == "run":
            seconds: list[float] = []
            boxes: list[list[list[int]]] = []
            encodings: list[list[list[float]]] = []
            for name in command["files"]:
                started = time.perf_counter()
                found, encoded = analyse(Path(name))
                seconds.append(time.perf_counter() - started)
                boxes.append(found)
                encodings.append(encoded if command.get("encodings") else [])
            print(
                json.dumps({"seconds": seconds, "boxes": boxes, "encodings": encodings}),
                flush=True,
            )
        else:
            raise ValueError(f"unknown command {op!r}")


def main(argv: list[str]) -> None:
    which = argv[0]
    warm_up = Path(argv[1]) if len(argv) > 1 else None
    factories = {"ours": ours, "baseline": baseline}
    serve(factories[which](), warm_up)


if __name__ == "__main__":
    main(sys.argv[1:])
