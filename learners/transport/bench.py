"""``hilr bench transport``: hilr transition throughput against raw ZMQ on TCP loopback.

Each transition carries TWO 128x128x3 uint8 images (``obs/front`` and ``next_obs/front``:
observation and next observation, not one shared frame) plus an 18-float state for each,
a 7-float action, reward, terminated and truncated: about 98 KB on the wire. The same run
measures, with frames of exactly the same size, raw ZMQ DEALER->ROUTER and PUSH->PULL
(no serialization, no acks, no outbox): the loopback ceiling. As in deployment, the
sending end (actor) is this process and the receiving end (learner) a child process
(``python -m learners.transport.bench --serve ...``); both clocks are the system-wide
``time.monotonic``.

A last, paced run sends ``paced_n`` transitions at ``paced_hz`` (an actor's load) and
reports how long each ``send()`` call took: what the control loop pays.

Options (``hilr bench transport +key=value``; all optional): ``n`` transitions per repeat
(default 2000), ``repeats`` (3; the median is reported), ``image_size`` (128),
``paced_hz`` (100), ``paced_n`` (300; 0 skips the paced run).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import zmq

from learners.transport import wire
from learners.transport.config import TransportConfig
from learners.transport.receiver import TransitionReceiver
from learners.transport.sender import TransitionSender


def make_transition(rng: np.random.Generator, size: int) -> dict[str, Any]:
    """One transition with two (size, size, 3) uint8 images (obs and next obs)."""
    def obs() -> dict[str, np.ndarray]:
        return {"state": rng.standard_normal(18).astype(np.float32),
                "front": rng.integers(0, 256, (size, size, 3), dtype=np.uint8)}

    return {"obs": obs(), "next_obs": obs(), "action": rng.uniform(-1, 1, 7).astype(np.float32),
            "reward": np.float32(1.0), "terminated": np.bool_(False), "truncated": np.bool_(False)}


def _serve(path: str, n: int) -> None:
    """Child process: the receiving end of one measurement (the learner's side).

    Protocol on stdout: ``PORT <port>``, then ``READY`` once connected, then
    ``DONE <time.monotonic()> <bytes>`` when ``n`` messages arrived. Exits at stdin EOF
    (for hilr it keeps acknowledging until then).
    """
    import sys

    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    got = nbytes = 0
    if path == "hilr":
        cfg = TransportConfig(transitions_port=0, weights_port=0, receive_queue=n + 16)
        with TransitionReceiver(cfg) as rx:
            say(f"PORT {rx.port}")
            while not rx.stats()["pings"]:
                time.sleep(0.001)
            say("READY")
            while got < n:
                for t in rx.poll(timeout_s=0.01):
                    got += 1
                    nbytes += t.nbytes
            say(f"DONE {time.monotonic()} {nbytes}")
            sys.stdin.read()  # acks keep flowing until the parent has them all
        return
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER if path == "dealer" else zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    say(f"PORT {sock.bind_to_random_port('tcp://127.0.0.1')}")
    sock.recv_multipart()  # the warm-up message
    say("READY")
    while got < n:
        frames = sock.recv_multipart(copy=False)
        got += 1
        nbytes += len(frames[-1])
    say(f"DONE {time.monotonic()} {nbytes}")
    sys.stdin.read()
    sock.close(0)
    ctx.term()


def _child(path: str, n: int):
    import os
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "learners.transport.bench", "--serve", path, str(n)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    line = proc.stdout.readline().split()
    if not line or line[0] != "PORT":
        proc.kill()
        raise RuntimeError(f"bench child for {path} failed to start: {line}")
    return proc, int(line[1])


def _expect(proc, word: str) -> list[str]:
    line = proc.stdout.readline().split()
    if not line or line[0] != word:
        proc.kill()
        raise RuntimeError(f"bench child: expected {word}, got {line}")
    return line


def bench_hilr(transitions: list[dict[str, Any]], n: int) -> dict[str, float]:
    """TransitionSender (this process) -> TransitionReceiver (child process): time until the
    learner took all ``n`` transitions, and until the actor had every final ack."""
    proc, port = _child("hilr", n)
    cfg = TransportConfig(transitions_port=0, weights_port=0, outbox_memory_messages=n + 16, max_in_flight=512)
    try:
        with TransitionSender(cfg, "bench", port=port) as tx:
            _expect(proc, "READY")
            send_s: list[float] = []
            t0 = time.monotonic()
            for i in range(n):
                s0 = time.perf_counter()
                tx.send(transitions[i % len(transitions)], policy_version=1)
                send_s.append(time.perf_counter() - s0)
            done = _expect(proc, "DONE")
            if not tx.flush(60.0):
                raise RuntimeError("bench: acknowledgements missing")
            t_ack = time.monotonic() - t0
            stats = tx.stats()
            resent = stats["resent"]
            per_message = (stats["sent"] + resent) / max(1, stats["messages"])
    finally:
        proc.stdin.close()
        proc.wait(10)
    return {"seconds": float(done[1]) - t0, "seconds_acked": t_ack, "bytes": int(done[2]), "resent": resent,
            "transitions_per_message": per_message,
            "send_p50_us": 1e6 * float(np.percentile(send_s, 50)), "send_p99_us": 1e6 * float(np.percentile(send_s, 99))}


def bench_paced(transitions: list[dict[str, Any]], n: int, hz: float) -> dict[str, float]:
    """An actor-like load: ``n`` transitions at ``hz`` on absolute deadlines; the latency
    of each ``send()`` call (what the control loop pays) and the end-to-end delay from
    ``send()`` to the learner's ``poll()`` (both processes share ``time.monotonic``)."""
    proc, port = _child("hilr", n)
    cfg = TransportConfig(transitions_port=0, weights_port=0)
    try:
        with TransitionSender(cfg, "bench-paced", port=port) as tx:
            _expect(proc, "READY")
            send_s: list[float] = []
            t0 = time.monotonic()
            for i in range(n):
                time.sleep(max(0.0, t0 + i / hz - time.monotonic()))
                s0 = time.perf_counter()
                tx.send(transitions[i % len(transitions)], policy_version=1)
                send_s.append(time.perf_counter() - s0)
            _expect(proc, "DONE")
            if not tx.flush(30.0):
                raise RuntimeError("bench: acknowledgements missing")
    finally:
        proc.stdin.close()
        proc.wait(10)
    us = 1e6 * np.asarray(send_s)
    return {"hz": hz, "n": n, "send_p50_us": float(np.percentile(us, 50)),
            "send_p99_us": float(np.percentile(us, 99)), "send_max_us": float(us.max())}


def bench_raw(frame: bytes, n: int, pattern: str) -> dict[str, float]:
    """Send ``n`` copies of ``frame`` over raw ZMQ (``dealer`` -> ROUTER or ``push`` -> PULL)
    to a child process; no serialization, no acks."""
    proc, port = _child(pattern, n)
    ctx = zmq.Context()
    out = ctx.socket(zmq.DEALER if pattern == "dealer" else zmq.PUSH)
    out.setsockopt(zmq.LINGER, 0)
    try:
        out.connect(f"tcp://127.0.0.1:{port}")
        out.send(b"warm")
        _expect(proc, "READY")
        t0 = time.monotonic()
        for _ in range(n):
            out.send(frame, copy=False)
        done = _expect(proc, "DONE")
    finally:
        proc.stdin.close()
        proc.wait(10)
        out.close(0)
        ctx.term()
    return {"seconds": float(done[1]) - t0, "bytes": int(done[2])}


def run(cfg: dict) -> dict:
    """Run the benchmark; prints a table and returns the JSON-able result."""
    from tqdm import tqdm

    n = int(cfg.get("n", 2000))
    repeats = int(cfg.get("repeats", 3))
    size = int(cfg.get("image_size", 128))
    rng = np.random.default_rng(int(cfg.get("seed", 0)))
    transitions = [make_transition(rng, size) for _ in range(16)]
    frame = wire.encode("transition", {"actor": "bench", "stream": 1, "seq": 0, "policy_version": 1,
                                       "sent_unix": time.time()}, transitions[0])
    runs: dict[str, list[dict[str, float]]] = {"hilr": [], "raw_dealer_router": [], "raw_push_pull": []}
    paced_hz = float(cfg.get("paced_hz", 100.0))
    paced_n = int(cfg.get("paced_n", 300))
    bench_hilr(transitions, min(n, 200))  # warm-up (imports, allocator, first connections)
    for _ in tqdm(range(repeats), desc="bench transport", unit="repeat"):
        runs["hilr"].append(bench_hilr(transitions, n))
        runs["raw_dealer_router"].append(bench_raw(frame, n, "dealer"))
        runs["raw_push_pull"].append(bench_raw(frame, n, "push"))

    result: dict[str, Any] = {"benchmark": "transport", "n": n, "repeats": repeats, "frame_bytes": len(frame),
                              "images_per_transition": 2, "image_shape": [size, size, 3],
                              "images": "obs/front and next_obs/front (observation and next observation)"}
    for name, rs in runs.items():
        sec = statistics.median(r["seconds"] for r in rs)
        mb = statistics.median(r["bytes"] for r in rs) / 1e6
        result[name] = {"transitions_per_s": n / sec, "mb_per_s": mb / sec}
    hilr = result["hilr"]
    hilr["transitions_per_s_acked"] = n / statistics.median(r["seconds_acked"] for r in runs["hilr"])
    hilr["send_p50_us"] = statistics.median(r["send_p50_us"] for r in runs["hilr"])
    hilr["send_p99_us"] = statistics.median(r["send_p99_us"] for r in runs["hilr"])
    hilr["resent"] = sum(r["resent"] for r in runs["hilr"])
    hilr["transitions_per_message"] = statistics.median(r["transitions_per_message"] for r in runs["hilr"])
    result["paced"] = bench_paced(transitions, paced_n, paced_hz) if paced_n > 0 else None
    for base in ("raw_dealer_router", "raw_push_pull"):
        result[f"ratio_vs_{base}"] = hilr["transitions_per_s"] / result[base]["transitions_per_s"]
        # Each repeat runs hilr and raw back to back: the median of those paired ratios is
        # less sensitive to a shared machine's load drifting between repeats.
        result[f"paired_ratio_vs_{base}"] = statistics.median(
            b["seconds"] / h["seconds"] for h, b in zip(runs["hilr"], runs[base]))

    print(f"\ntransport over tcp://127.0.0.1, {n} transitions x {repeats} repeats (median), "
          f"frame {len(frame) / 1e3:.1f} kB = 2 images {size}x{size}x3 uint8 + state/action/reward")
    print(f"{'path':<22}{'transitions/s':>15}{'MB/s':>10}{'vs hilr':>10}")
    for name in runs:
        r = result[name]
        print(f"{name:<22}{r['transitions_per_s']:>15.0f}{r['mb_per_s']:>10.1f}"
              f"{hilr['transitions_per_s'] / r['transitions_per_s']:>10.2f}")
    print(f"hilr / raw DEALER->ROUTER: {result['ratio_vs_raw_dealer_router']:.2f} (medians), "
          f"{result['paired_ratio_vs_raw_dealer_router']:.2f} (median of the {repeats} paired repeats)")
    print(f"hilr incl. final acks: {hilr['transitions_per_s_acked']:.0f} transitions/s; "
          f"send() p50 {hilr['send_p50_us']:.0f} us, p99 {hilr['send_p99_us']:.0f} us (saturated); "
          f"{hilr['transitions_per_message']:.1f} transitions per message (batched under load)")
    if result["paced"]:
        p = result["paced"]
        print(f"paced like an actor ({p['n']} at {p['hz']:.0f} Hz): send() p50 {p['send_p50_us']:.0f} us, "
              f"p99 {p['send_p99_us']:.0f} us, max {p['send_max_us']:.0f} us")
    return result


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        _serve(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit("usage: python -m learners.transport.bench --serve hilr|dealer|push N  (use `hilr bench transport`)")
