"""Model commands: model-info (sizes of a config), import-checkpoint (torch_brain POYO),
bench-stream (the streaming decoder's latency on a replayed recording) and export (ONNX graphs for
other runtimes)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from neuropoyo.cli.options import CONFIG_HELP, COUNT, POSITIVE, add_renamed

EXPORT_FORMATS = ("onnx",)  # neuropoyo.streaming.export.EXPORT_FORMATS, named without loading torch
STREAM_BACKENDS = ("torch", "onnxruntime", "openvino")  # neuropoyo.streaming.runtimes.BACKENDS


def cmd_model_info(args: argparse.Namespace) -> None:
    from neuropoyo.model.info import format_model_info, model_info
    from neuropoyo.training.config import RunConfig

    config = RunConfig.from_yaml(args.config).model
    info = model_info(config, args.tokens, args.outputs, args.batch_size)
    print(f"{args.config}: {args.tokens} input tokens and {args.outputs} outputs per window, batch {args.batch_size}")
    print(format_model_info(info))


def cmd_import_checkpoint(args: argparse.Namespace) -> None:
    from neuropoyo.interop.torch_brain_checkpoint import (
        DEFAULT_READOUT,
        import_checkpoint,
    )

    readout = args.readout or DEFAULT_READOUT
    out = import_checkpoint(args.checkpoint, args.out, trust_pickle=args.trust_pickle, readout=readout)
    print(
        f"wrote model directory {out} (readout {readout!r}, identity normalizer); "
        f"evaluate it with `neuropoyo evaluate --model {out} --data ... --out ...`"
    )


def cmd_bench_stream(args: argparse.Namespace) -> None:
    from neuropoyo.data.store import read_recording
    from neuropoyo.devices import checked_device
    from neuropoyo.io import write_text_atomic
    from neuropoyo.machine import gpu_line, machine_line
    from neuropoyo.streaming.bench import bench_stream
    from neuropoyo.trained import load_model

    device = checked_device(args.device)
    result = bench_stream(
        load_model(args.model, device=device), read_recording(args.data), readout=args.readout,
        update_ms=args.update_ms, duration_s=args.duration_s, compare_every=args.compare_every,
        torch_brain=not args.no_torch_brain, dtype=args.dtype, compile=args.compile, backend=args.backend,
    )
    print(machine_line())
    if device.type == "cuda":
        print(gpu_line(device))
    _print_latencies(result, args.update_ms)
    if args.out:
        write_text_atomic(args.out, json.dumps(result, indent=2))
        print(f"figures in {args.out}")


def _print_latencies(result: dict, update_ms: float) -> None:
    from neuropoyo.streaming.bench import REFERENCE_MS

    print(f"{result['recording']}: {result['updates']} updates every {update_ms:g} ms, "
          f"R2 of the streamed {result['readout']} = {result['r2']:.4f}")
    mode = result["dtype"] + (", compiled" if result["compiled"] else "")
    mode += "" if result["backend"] == "torch" else f", {result['backend']}"
    labels = {
        "stream": f"streaming update (ours, {mode})",
        "full_window": "full-window forward (ours)",
        "torch_brain_full_window": "full-window forward (torch_brain)",
        "reference": f"fixed matmul reference (~{REFERENCE_MS:g} ms)",
    }
    print(f"{'latency, ms':<46}{'p50':>8}{'p99':>8}{'max':>8}")
    for key, label in labels.items():
        if key in result:
            print(f"{label:<46}" + "".join(f"{result[key][q]:>8.2f}" for q in ("p50", "p99", "max")))
    if "ratio" in result:
        print(f"torch_brain full-window p50 / our update p50 = {result['ratio']:.2f}x")
    print(f"streamed estimates against our full-window forward on the same windows: max |difference| "
          f"{result['max_abs_difference']:.2e} (z-scored)")


def _add_bench_stream(commands) -> None:
    streamer = commands.add_parser(
        "bench-stream", help="replay a recording through the streaming decoder and time each update"
    )
    streamer.add_argument("--model", required=True, help="trained model directory")
    streamer.add_argument("--data", required=True, help="recording file (.h5) to replay")
    streamer.add_argument("--readout", default=None, help="behavior stream (default: the model's only readout)")
    streamer.add_argument("--update-ms", type=POSITIVE, default=10.0, help="time between updates (default 10)")
    duration = streamer.add_argument(
        "--duration-s", type=POSITIVE, default=30.0, metavar="SECONDS", help="recording time replayed (default 30)"
    )
    add_renamed(streamer, "--seconds", duration)
    streamer.add_argument(
        "--compare-every", type=COUNT, default=10,
        help="every N updates, run the full-window forwards and the reference on the latest windows (default 10)",
    )
    streamer.add_argument("--no-torch-brain", action="store_true", help="skip torch_brain's full-window forward")
    streamer.add_argument(
        "--dtype", choices=("float32", "bfloat16"), default="float32",
        help="streaming decoder precision (default float32; bfloat16 pays off on CPUs with AMX)",
    )
    streamer.add_argument(
        "--compile", action="store_true",
        help="compile the streaming decoder's latent stack and readout (torch.compile, frozen weights)",
    )
    streamer.add_argument(
        "--backend", choices=STREAM_BACKENDS, default="torch",
        help="what runs each update after the push (encoder, latent stack, readout): torch (default), or an "
        "inference runtime on the CPU (the export extra; torch, with a warning, where it is missing)",
    )
    streamer.add_argument("--device", default="cpu", help="where the models decode: cpu or cuda (default cpu)")
    streamer.add_argument("--out", default=None, help="also write the figures to this JSON file")
    streamer.set_defaults(func=cmd_bench_stream)


def cmd_export(args: argparse.Namespace) -> None:
    from neuropoyo.streaming.export import MANIFEST, export_onnx
    from neuropoyo.trained import load_model

    out = export_onnx(load_model(args.model), args.out, readout=args.readout)
    manifest = json.loads((out / MANIFEST).read_text())
    units, sessions = len(manifest["units"]), len(manifest["sessions"])
    print(f"wrote {out}: {units} unit{'s' * (units != 1)}, {sessions} session{'s' * (sessions != 1)}, "
          f"streamed readout {manifest['readout']!r}, context {manifest['context_length_s']:g} s")
    for name, graph in manifest["graphs"].items():
        signature = ", ".join(f"{v['name']} {v['dtype']}{v['shape']}" for v in graph["inputs"])
        print(f"  {graph['file']:<14} ({signature}); max |ONNX Runtime - PyTorch| "
              f"{manifest['max_abs_difference'][name]:.1e}")
    print(f"  {MANIFEST:<14} vocabularies, normalisation, inputs and outputs of each graph")


def _add_export(commands) -> None:
    exporter = commands.add_parser(
        "export", help="write a model as ONNX graphs (offline window and streaming update) with a JSON manifest"
    )
    exporter.add_argument("--model", required=True, help="trained model directory (or run directory)")
    exporter.add_argument("--format", choices=EXPORT_FORMATS, default="onnx", help="graph format (default onnx)")
    exporter.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder to write")
    exporter.add_argument(
        "--readout", metavar="NAME", help="behavior stream the streaming update estimates (default: the model's only one)"
    )
    exporter.set_defaults(func=cmd_export)


def _add_import_checkpoint(commands) -> None:
    importer = commands.add_parser(
        "import-checkpoint", help="convert a torch_brain POYO checkpoint (.ckpt) into a model directory"
    )
    importer.add_argument("checkpoint", type=Path, metavar="CKPT", help="Lightning .ckpt file")
    importer.add_argument("--out", required=True, type=Path, metavar="DIR", help="model directory to write")
    importer.add_argument(
        "--trust-pickle", action="store_true",
        help="allow full unpickling when PyTorch's safe loader (torch.load with weights_only=True) "
        "cannot read the file, e.g. a .ckpt holding Lightning or omegaconf objects; unpickling can "
        "run arbitrary code, so pass this only for files from a source you trust",
    )
    importer.add_argument(
        "--readout", metavar="NAME",
        help="behavior stream the readout decodes (default cursor_vel, the stream `prepare brainsets` "
        "makes of cursor.vel); recordings must hold "
        "a stream of this name. torch_brain checkpoints carry no behavior scale, so the model gets an "
        "identity normalizer (mean 0, std 1): targets and predictions stay in the units it was trained on",
    )
    importer.set_defaults(func=cmd_import_checkpoint)


def add_commands(commands) -> None:
    """model-info, bench-stream, import-checkpoint, export."""
    info = commands.add_parser("model-info", help="parameter counts and FLOPs of a config")
    info.add_argument("--config", required=True, help=CONFIG_HELP)
    info.add_argument("--tokens", type=COUNT, default=2000, help="input tokens per window (default 2000)")
    info.add_argument("--outputs", type=COUNT, default=100, help="output queries per window (default 100)")
    info.add_argument("--batch-size", type=COUNT, default=128, help="windows per step (default 128)")
    info.set_defaults(func=cmd_model_info)
    _add_bench_stream(commands)
    _add_import_checkpoint(commands)
    _add_export(commands)
