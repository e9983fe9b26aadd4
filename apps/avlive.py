"""The ``avlive`` command: live labels and sound-source heatmaps from a camera and a microphone.

    avlive                                          the synthetic world (bench, seed 200000), demo models
    avlive --models runs/baseline --mic default --camera none
    avlive --source clip.mp4 --models runs/baseline runs/l3 --record out.mp4 --events-out out.tsv
    avlive --source synthetic:200001 --models runs/baseline --no-realtime --duration 60 --jsonl out.jsonl
    avlive --list-devices

There is no window yet (issue 8): avlive runs headless and writes one JSON object per hop
(``realtime.schema``) to stdout or ``--jsonl FILE``; a summary goes to stderr at the end. Ctrl-C
stops cleanly: every output is flushed and the exit status is 0. Bad input (a device that is
not there, a model folder that lacks a file, a model that does not fit its use) ends with one
line on stderr and exit status 2; a failure while running with status 1.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

SOURCES_EPILOG = """\
sources:
  --source synthetic[:SEED[:PRESET]]   the synthetic world (default synthetic:200000, bench preset)
  --source FILE                        a media file's audio and video, replayed at real-time pace
  --mic default|INDEX|NAME             a microphone (replaces the source's audio)
  --camera INDEX|PATH|URL              a camera, a video file or a stream (replaces the source's video)
  --camera none                        audio only: labels, no heatmap
  a source without audio runs video only (the models hear silence)

"""


def _pre_parser() -> argparse.ArgumentParser:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--list-devices", action="store_true", help="list microphones and cameras, then exit")
    pre.add_argument("--list-models", action="store_true", help="list the registered networks, recipes and live models, then exit")
    return pre


def build_parser() -> argparse.ArgumentParser:
    from realtime.models import BACKENDS, DEVICES, MODEL_USAGE

    class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
        pass

    p = argparse.ArgumentParser(prog="avlive", parents=[_pre_parser()], formatter_class=Formatter,
                                description="Real-time audio-visual recognition: rolling labels and a sound-source "
                                            "heatmap from a camera and a microphone.",
                                epilog=SOURCES_EPILOG + MODEL_USAGE)
    g = p.add_argument_group("input")
    g.add_argument("--source", metavar="synthetic[:SEED]|FILE", default=None,
                   help="audio+video source (default synthetic:200000 when no --mic/--camera is given)")
    g.add_argument("--camera", metavar="INDEX|PATH|URL|none", default=None, help="video from a camera; none: audio only")
    g.add_argument("--mic", metavar="default|INDEX|NAME", default=None, help="audio from a microphone")
    g.add_argument("--av-offset-ms", type=float, default=0.0, metavar="MS",
                   help="added to every frame's time (negative when the picture lags the sound)")
    g.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=True,
                   help="pace files and the world in real time; --no-realtime: as fast as possible, every hop "
                        "(live devices are never throttled)")
    g.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds of stream time")
    m = p.add_argument_group("models")
    m.add_argument("--labeler", metavar="NAME|PATH", default=None, help="the labeler (a model path, or none)")
    m.add_argument("--localizer", metavar="NAME|PATH", default=None, help="the localizer (a model path, or none)")
    m.add_argument("--models", nargs="+", default=[], metavar="PATH",
                   help="model paths; each is a labeler or a localizer by its metadata's task")
    m.add_argument("--backend", choices=BACKENDS, default="onnxruntime", help="inference backend")
    m.add_argument("--device", choices=DEVICES, default="cpu", help="inference device")
    m.add_argument("--threads", type=int, default=2, metavar="N", help="CPU threads per backend")
    m.add_argument("--hop", type=float, default=0.25, metavar="S", help="seconds between inferences")
    m.add_argument("--localizer-every", type=int, default=3, metavar="N", help="the localizer runs every N-th hop")
    o = p.add_argument_group("output")
    o.add_argument("--jsonl", default="-", metavar="FILE|-", help="JSON lines, one per hop (- for stdout, none for none)")
    o.add_argument("--events-out", default=None, metavar="FILE.tsv", help="events as a DCASE strong-label TSV")
    o.add_argument("--record", default=None, metavar="OUT.mp4", help="record the camera with the overlay, and the audio")
    d = o.add_mutually_exclusive_group()
    d.add_argument("--headless", action="store_true", help="no window (the only mode until issue 8)")
    d.add_argument("--gui", action="store_true", help="open the window (not built yet: issue 8)")
    return p


def _has_display() -> bool:
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def _fail(e: BaseException, status: int) -> int:
    text = " ".join(str(e).split()) or type(e).__name__
    print(f"avlive: {type(e).__name__}: {text}", file=sys.stderr, flush=True)
    return status


def _stop_on_signals() -> dict:
    """Ctrl-C and SIGTERM stop the run cleanly (KeyboardInterrupt), even when the shell that
    started avlive in the background set SIGINT to be ignored (POSIX does so for ``cmd &``).
    Returns the previous handlers, for :func:`_restore_signals`."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)
    return previous


def _restore_signals(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pre, _ = _pre_parser().parse_known_args(argv)
    if pre.list_devices:
        from realtime.devices import list_devices

        print(list_devices())
        return 0
    if pre.list_models:
        from models.live import LIVE_MODELS
        from models.networks import NETWORKS, import_families
        from models.recipes import RECIPES

        import_families()
        print("networks:\n" + NETWORKS.describe())
        print("recipes (python -m models.train):\n" + RECIPES.describe())
        print("live models:\n" + LIVE_MODELS.describe())
        return 0
    args = build_parser().parse_args(argv)
    if args.gui:
        why = "there is no window yet (issue 8)" + ("" if _has_display() else " and no display (DISPLAY is not set)")
        print(f"avlive: --gui: {why}; run with --headless (JSON lines on stdout)", file=sys.stderr)
        return 2
    if args.threads < 1:
        print(f"avlive: --threads: expected an int >= 1, found {args.threads}", file=sys.stderr)
        return 2

    from engines.base import DeviceUnavailableError
    from models.media import MediaDecodeError
    from models.metadata import MetadataMismatch
    from realtime.devices import DeviceNotFound, PortAudioNotFound
    from realtime.models import ModelError, load_models
    from realtime.pipeline import PipelineConfig, PipelineError, build_streams, check_sources, run_pipeline
    from realtime.sources import SourceError

    jsonl = None if args.jsonl == "none" else args.jsonl
    bad_input = (ModelError, PipelineError, DeviceNotFound, PortAudioNotFound, MetadataMismatch, FileNotFoundError,
                 MediaDecodeError, DeviceUnavailableError)
    models = None
    previous_handlers = _stop_on_signals()
    try:
        config = PipelineConfig(source=args.source, camera=args.camera, mic=args.mic, hop_s=args.hop,
                                localizer_every=args.localizer_every, realtime=args.realtime,
                                av_offset_ms=args.av_offset_ms, duration=args.duration, jsonl=jsonl,
                                events_out=args.events_out, record=args.record)
        check_sources(config)
        video = args.camera != "none"
        models, notes = load_models(labeler=args.labeler, localizer=args.localizer, models=args.models,
                                    backend=args.backend, device=args.device, threads=args.threads, video=video)
        for line in notes:
            print(f"avlive: {line}", file=sys.stderr)
        streams = build_streams(config, models)
        if not args.headless:
            where = "on stdout" if jsonl == "-" else (f"to {jsonl}" if jsonl else "off")
            display = "no window yet" + ("" if _has_display() else " / no display")
            print(f"avlive: {display}: running headless, JSON lines {where}", file=sys.stderr, flush=True)
        run_pipeline(config, models, streams)
    except bad_input as e:
        return _fail(e, 2)
    except SourceError as e:
        return _fail(e, 1)
    except KeyboardInterrupt:  # before the run started (loading models, opening devices)
        print("avlive: Interrupted by user", file=sys.stderr)
        return 0
    finally:
        _restore_signals(previous_handlers)
        if models is not None:
            models.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
