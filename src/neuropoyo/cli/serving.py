"""Closed-loop commands: serve (a decoder service on LSL or Redis) and replay (a recording's spikes
published as a live stream)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from contextlib import contextmanager

from neuropoyo.cli.options import COUNT, POSITIVE, add_list, bounded

SPIKES, ESTIMATES, REDIS_URL = "neuropoyo-spikes", "neuropoyo-estimates", "redis://localhost:6379/0"


@contextmanager
def _stop_on_signals():
    """An event set by Ctrl-C or SIGTERM (the service then stops cleanly), handlers restored after."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_serve(args: argparse.Namespace) -> None:
    from neuropoyo.streaming.serving import serve_model

    log_file = open(args.log, "a") if args.log else sys.stdout

    def log(record: dict) -> None:
        print(json.dumps(record), file=log_file, flush=True)

    try:
        with _stop_on_signals() as stop:
            final = serve_model(
                args.model, transport_name=args.transport, spikes=args.spikes, estimates=args.estimates,
                redis_url=args.redis_url, session=args.session, recording_info=args.recording_info, units=args.units,
                readout=args.readout, update_ms=args.update_ms, max_wait_ms=args.max_wait_ms, gap_ms=args.gap_ms,
                jump_s=args.jump_s, wait_s=args.wait_s, dtype=args.dtype, compile=args.compile, backend=args.backend,
                threads=args.threads,
                duration_s=args.duration_s, record=args.record, score=args.score, stop=stop, log=log,
            )
    finally:
        if log_file is not sys.stdout:
            log_file.close()
    scored = f"; R2 {final['r2']:.4f} over {final['scored_updates']} updates" if final.get("r2") is not None else ""
    print(f"stopped after {final['seconds']:g} s: {final['updates']} updates ({final['dropped_updates']} dropped), "
          f"{final['spikes']} spikes, {final['late_spikes']} late, {final['unknown_unit_spikes']} of unknown units, "
          f"{final['gaps']} gaps, {final['clock_jumps']} clock jumps; decoder p50 "
          f"{final.get('decode_ms_p50', float('nan')):.2f} ms{scored}", file=sys.stderr)


def cmd_replay(args: argparse.Namespace) -> None:
    from neuropoyo.streaming.serving import replay_file

    with _stop_on_signals() as stop:
        result = replay_file(
            args.file, transport_name=args.transport, spikes=args.spikes, redis_url=args.redis_url, speed=args.speed,
            chunk_ms=args.chunk_ms, start_s=args.start_s, duration_s=args.duration_s,
            wait_for_consumer_s=args.wait_for_consumer_s, stop=stop,
        )
    print(f"sent {result['spikes']} spikes in {result['chunks']} chunks; chunks left at most "
          f"{result['late_ms_p99']:g} ms behind schedule (p99)", file=sys.stderr)


def _add_transport(parser) -> None:
    parser.add_argument("--transport", choices=("lsl", "redis"), default="lsl",
                        help="Lab Streaming Layer (default) or Redis streams (BRAND-style graphs)")
    parser.add_argument("--spikes", default=SPIKES, metavar="NAME",
                        help=f"the spike stream: LSL stream name or Redis stream key (default {SPIKES})")
    parser.add_argument("--redis-url", default=REDIS_URL, metavar="URL", help=f"Redis server (default {REDIS_URL})")


def add_commands(commands) -> None:
    """serve, replay."""
    server = commands.add_parser(
        "serve", help="decode a live spike stream (LSL or Redis) and publish the behavior estimate"
    )
    server.add_argument("--model", required=True, help="trained model directory")
    server.add_argument("--session", metavar="ID",
                        help="the model's session (brainset/recording) the stream comes from (default: the "
                        "stream's own, or --recording-info's)")
    server.add_argument("--recording-info", metavar="FILE",
                        help="a recording file (.h5) of the session: its session and unit ids (wire order)")
    add_list(server, "--units", metavar="ID",
             help="unit ids in wire order (default: the stream's own list, else the session's units in the model's order)")
    server.add_argument("--readout", default=None, help="behavior stream (default: the model's only readout)")
    _add_transport(server)
    server.add_argument("--estimates", default=ESTIMATES, metavar="NAME",
                        help=f"the estimate stream: LSL stream name or Redis stream key (default {ESTIMATES})")
    server.add_argument("--update-ms", type=POSITIVE, default=10.0, help="time between estimates (default 10)")
    server.add_argument("--max-wait-ms", type=bounded(float, 0), default=None, metavar="MS",
                        help="decode an update this long after its time even if no later sample arrived "
                        "(for sources that send no ticks; default: wait for one)")
    server.add_argument("--gap-ms", type=POSITIVE, default=500.0, metavar="MS",
                        help="input silence that counts as a gap: estimates pause (default 500)")
    server.add_argument("--jump-s", type=POSITIVE, default=1.0, metavar="SECONDS",
                        help="disagreement of source time and clock that counts as a clock jump (default 1)")
    server.add_argument("--wait-s", type=POSITIVE, default=10.0, metavar="SECONDS",
                        help="how long to wait for the spike stream to appear (default 10)")
    server.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                        help="decoder precision (default float32)")
    server.add_argument("--compile", action="store_true", help="compile the decoder's latent stack (torch.compile)")
    server.add_argument("--backend", choices=("torch", "onnxruntime", "openvino"), default="torch",
                        help="what runs each update after the push: the encoder, latent stack and readout (default torch; "
                        "onnxruntime halves a small model's update)")
    server.add_argument("--threads", type=COUNT, default=None, metavar="N",
                        help="torch threads for decoding (default: torch's own choice; 1 often suits small models)")
    server.add_argument("--duration-s", type=POSITIVE, default=None, metavar="SECONDS",
                        help="stop after this long (default: run until Ctrl-C or SIGTERM)")
    server.add_argument("--record", metavar="CSV", help="write every estimate, with its timings, to this file at the end")
    server.add_argument("--score", metavar="FILE",
                        help="at the end, the R2 of the estimates against this recording (a replayed stream)")
    server.add_argument("--log", metavar="FILE", help="append the JSON log lines here instead of stdout")
    server.set_defaults(func=cmd_serve)

    replayer = commands.add_parser("replay", help="publish a recording's spikes as a live LSL or Redis stream")
    replayer.add_argument("file", metavar="FILE", help="recording file (.h5)")
    _add_transport(replayer)
    replayer.add_argument("--speed", type=POSITIVE, default=1.0, help="times real time (default 1)")
    replayer.add_argument("--chunk-ms", type=POSITIVE, default=10.0, help="recording time per chunk (default 10)")
    replayer.add_argument("--start-s", type=float, default=None, metavar="SECONDS",
                          help="recording time to start from (default: its start)")
    replayer.add_argument("--duration-s", type=POSITIVE, default=None, metavar="SECONDS",
                          help="recording time to send (default: to the end)")
    replayer.add_argument("--wait-for-consumer-s", type=bounded(float, 0), default=10.0, metavar="SECONDS",
                          help="LSL: wait this long for a consumer before sending (default 10)")
    replayer.set_defaults(func=cmd_replay)
