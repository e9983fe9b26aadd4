"""The ``avlive`` command: live labels and sound-source heatmaps from a camera and a microphone.

    avlive                                          the synthetic world (bench, seed 200000), demo models
    avlive --camera 0 --mic default                 a camera and a microphone, in the window
    avlive --headless --duration 30                 JSON lines on stdout, no window
    avlive --models runs/baseline --mic default --camera none
    avlive --source clip.mp4 --models runs/baseline runs/l3 --record out.mp4 --events-out out.tsv
    avlive --source synthetic:200001 --models runs/baseline --no-realtime --duration 60 --jsonl out.jsonl
    avlive --source synthetic:200001 --no-realtime --duration 60 --scores-out scores.tsv   (frame scores, for PSDS)
    avlive --source synthetic:1 --source synthetic:2 --source clip.mp4 --events-out out/events.tsv   (3 streams)
    avlive --list-devices

With a display (``DISPLAY`` or ``WAYLAND_DISPLAY`` set, or ``QT_QPA_PLATFORM=offscreen``) avlive
opens its window (``apps.window``: the camera with the heatmap, rolling labels, the event
timeline, a scrolling spectrogram, the status; keys space, s, r, q); ``--gui`` insists on it and
exits with status 2 and one line suggesting ``--headless`` when there is no display. Headless
(``--headless``, or no display, which avlive says in one line on stderr) it writes one JSON
object per hop (``realtime.schema``) to stdout or ``--jsonl FILE``; with the window, JSON lines
are written only when ``--jsonl`` is given. A summary goes to stderr at the end.

Models: with none given, the demo models for the synthetic world, the real-sound labeler (no
localizer) for a microphone, camera or file; ``--labeler`` or ``--localizer`` replaces the
default of its kind only (``none`` leaves it out), ``--models`` lists the run's models exactly.
The first line says which models run and why. A file whose audio is below a model's rate (a
22.05 or 11.025 kHz camcorder file) is upsampled for it, with one line per model saying what it
gets: its whole band, part of it (a warning), or, for a default model that would see less than
half its band, nothing (left out; name it to run it anyway).

The hop (``--hop``) defaults to the labeler's preferred one (``extra.hop_seconds`` in its
metadata), else 0.25 s; the localizer then runs about every 0.75 s (``--localizer-every``
defaults to round(0.75 / hop)).

Ctrl-C (or ``q``) stops cleanly: every output is flushed and the exit status is 0. Bad input (a
device that is not there, a model folder that lacks a file, a model that does not fit its use)
ends with one line on stderr and exit status 2; a failure while running with status 1.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import threading
from pathlib import Path

SOURCES_EPILOG = """\
sources:
  --source synthetic[:SEED[:PRESET]]   the synthetic world (default synthetic:200000, bench preset)
  --source FILE                        a media file's audio and video, replayed at real-time pace
  --mic default|INDEX|NAME             a microphone (replaces the source's audio)
  --camera INDEX|PATH|URL              a camera, a video file or a stream (replaces the source's video)
  --camera none                        audio only: labels, no heatmap
  --source camera:CAM+mic:DEV          live devices as one source (also mic:DEV or camera:CAM alone):
                                       repeat --source for several streams, e.g. two rooms
  a source without audio runs video only (the models hear silence)

"""


#: The window's heatmap colour maps (``apps.window.COLORMAPS``; repeated so --help needs no Qt).
WINDOW_COLORMAPS = ("inferno", "magma", "plasma", "viridis", "turbo")


def _pre_parser() -> argparse.ArgumentParser:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--list-devices", action="store_true", help="list microphones and cameras, then exit")
    pre.add_argument("--list-models", action="store_true", help="list the registered networks, recipes and live models, then exit")
    return pre


def build_parser() -> argparse.ArgumentParser:
    from engines.triton_runner import DEFAULT_TRITON_URL
    from realtime.models import BACKENDS, DEVICES, MODEL_USAGE, PRECISIONS

    class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
        pass

    p = argparse.ArgumentParser(prog="avlive", parents=[_pre_parser()], formatter_class=Formatter,
                                description="Real-time audio-visual recognition: rolling labels and a sound-source "
                                            "heatmap from a camera and a microphone.",
                                epilog=SOURCES_EPILOG + MODEL_USAGE)
    g = p.add_argument_group("input")
    g.add_argument("--source", metavar="synthetic[:SEED]|FILE|camera:CAM[+mic:DEV]|mic:DEV", default=None,
                   action="append",
                   help="audio+video source (default synthetic:200000 when no --mic/--camera is given); "
                        "camera:0+mic:default names live devices as --camera 0 --mic default do. Repeat it for "
                        "several streams in one process (one inference thread; JSON lines name their stream; "
                        "--events-out, --scores-out and --record write one file per stream: OUT.<stream>.tsv; "
                        "headless, real-time pace)")
    g.add_argument("--camera", metavar="INDEX|PATH|URL|none", default=None, help="video from a camera; none: audio only")
    g.add_argument("--mic", metavar="default|INDEX|NAME", default=None, help="audio from a microphone")
    g.add_argument("--av-offset-ms", type=float, default=0.0, metavar="MS",
                   help="added to every frame's time (negative when the picture lags the sound)")
    g.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=True,
                   help="pace files and the world in real time; --no-realtime: as fast as possible, every hop "
                        "(live devices are never throttled)")
    g.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds of stream time")
    g.add_argument("--loss-after", type=float, default=0.75, metavar="S",
                   help="a live microphone or camera that delivers nothing for S seconds is lost: reported, "
                        "reopened until it is back (meanwhile the models hear silence / run no localizer)")
    g.add_argument("--give-up-after", type=float, default=None, metavar="S",
                   help="end the run (status 1) when a lost device is not back after S seconds (default: wait)")
    m = p.add_argument_group("models")
    m.add_argument("--labeler", metavar="PATH|none", default=None,
                   help="the labeler (a model path, or none); the default localizer stays unless --localizer none")
    m.add_argument("--localizer", metavar="PATH|none", default=None,
                   help="the localizer (a model path, or none); the default labeler stays unless --labeler none")
    m.add_argument("--models", nargs="+", default=[], metavar="PATH",
                   help="the run's models, exactly (no defaults added); each is a labeler or a localizer by its "
                        "metadata's task")
    m.add_argument("--backend", choices=BACKENDS, default="onnxruntime", help="inference backend")
    m.add_argument("--device", choices=DEVICES, default="cpu", help="inference device")
    m.add_argument("--triton-url", default=DEFAULT_TRITON_URL, metavar="HOST:PORT",
                   help="--backend triton: the Triton Inference Server's gRPC endpoint (a model path names the model "
                        "its --triton export made; a plain NAME is the model's name on the server)")
    m.add_argument("--threads", type=int, default=2, metavar="N", help="CPU threads per backend")
    m.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp32: the exported model; int8: its static INT8 variant MODEL.int8.onnx (python -m "
                        "models.export RUN --int8; --backend onnxruntime) (default: %(default)s)")
    m.add_argument("--hop", type=float, default=None, metavar="S",
                   help="seconds between inferences (default: the labeler's preferred hop, metadata "
                        "extra.hop_seconds, else 0.25)")
    m.add_argument("--localizer-every", type=int, default=None, metavar="N",
                   help="the localizer runs every N-th hop (default: about every 0.75 s, N = round(0.75 / hop): "
                        "3 at the 0.25 s hop)")
    o = p.add_argument_group("output")
    o.add_argument("--jsonl", default=None, metavar="FILE|-",
                   help="JSON lines, one per hop (- for stdout, none for none; default: stdout when headless, none "
                        "with the window)")
    o.add_argument("--events-out", default=None, metavar="FILE.tsv",
                   help="events as a DCASE strong-label TSV, appended as they end (on disk within 1 s), sorted at the end")
    o.add_argument("--scores-out", default=None, metavar="FILE.tsv",
                   help="the (first) labeler's raw scores as a score table TSV: header onset, offset, its labels; "
                        "one row per frame (frame-level labelers) or per run, in stream seconds, written as the run "
                        "goes (for PSDS: models.evaluation.psds, sed_scores_eval)")
    o.add_argument("--record", default=None, metavar="OUT.mp4",
                   help="record the whole run, the camera with the overlay and the audio (.mp4, .mkv or .mov); "
                        "written as "
                        "OUT.partial.mp4 (fragmented: a killed run leaves a file that plays to its last second) and "
                        "renamed at the end")
    w = p.add_argument_group("window")
    d = w.add_mutually_exclusive_group()
    d.add_argument("--headless", action="store_true", help="no window: JSON lines (the default without a display)")
    d.add_argument("--gui", action="store_true", help="the window, or fail when there is no display "
                                                      "(the default with a display)")
    w.add_argument("--colormap", default="inferno", choices=WINDOW_COLORMAPS, help="the heatmap's colour map")
    w.add_argument("--opacity", type=float, default=0.7, metavar="A", help="the heatmap's opacity, 0..1")
    w.add_argument("--save-dir", default=".", metavar="DIR", help="where the window's screenshots (s) and "
                                                                   "recordings (r) go")
    return p


def _has_display() -> bool:
    """Whether a window can open: ``QT_QPA_PLATFORM=offscreen`` (tests, screenshots) or, on
    Linux, an X11 or Wayland display."""
    if os.environ.get("QT_QPA_PLATFORM", "").startswith("offscreen"):
        return True
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


def _recovery(args):
    from realtime.capture import RecoveryPolicy
    from realtime.pipeline import PipelineError

    try:
        return RecoveryPolicy(loss_after_s=args.loss_after, give_up_after_s=args.give_up_after)
    except ValueError as e:
        flag = "--give-up-after" if "give_up" in str(e) else "--loss-after"
        raise PipelineError(f"{flag}: {str(e).split(': ', 1)[1]}") from None


def _run_with_window(args, config, models, streams) -> None:
    """The pipeline on a background thread, the window on this one, until the window closes.

    Raises:
        Whatever the pipeline raised (after it stopped and flushed every output).
    """
    from apps.window import WindowConfig, models_line, run_window
    from realtime.live_view import LiveView, PipelineThread

    labelers = models.labelers
    window_config = WindowConfig(colormap=args.colormap, opacity=args.opacity, save_dir=Path(args.save_dir),
                                 analysis_window_s=labelers[0].model.window.seconds if labelers else 0.0)
    view = LiveView()
    pipeline = PipelineThread(config, models, streams, view)
    pipeline.start()
    try:
        run_window(view, pipeline, window_config, models_line(models, args.backend, args.device))
    finally:
        pipeline.stop()
        pipeline.join()
    if pipeline.error is not None:
        raise pipeline.error


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pre, _ = _pre_parser().parse_known_args(argv)
    if pre.list_devices:
        from realtime.devices import list_devices

        print(list_devices())
        return 0
    if pre.list_models:
        from models.families import FAMILIES, MODEL_FILES, NETWORKS, RECIPES

        print("families (the family field of a model's metadata picks its live adapter):\n" + FAMILIES.describe())
        print("networks:\n" + NETWORKS.describe())
        print("recipes (python -m models.train):\n" + RECIPES.describe())
        print("model files the families read directly (--models FILE):\n" + MODEL_FILES.describe())
        return 0
    args = build_parser().parse_args(argv)
    display = _has_display()
    if args.gui and not display:
        print("avlive: --gui: no display (DISPLAY and WAYLAND_DISPLAY are not set); run with --headless "
              "(JSON lines on stdout)", file=sys.stderr)
        return 2
    most_threads = 4 * (os.cpu_count() or 1)
    if not 1 <= args.threads <= most_threads:
        print(f"avlive: --threads: expected an int in [1, {most_threads}] (4 per CPU core here), found {args.threads}",
              file=sys.stderr)
        return 2
    if not 0.0 <= args.opacity <= 1.0:
        print(f"avlive: --opacity: expected a value in [0, 1], found {args.opacity}", file=sys.stderr)
        return 2
    if not os.path.isdir(args.save_dir):
        print(f"avlive: --save-dir {args.save_dir}: no such folder", file=sys.stderr)
        return 2
    several = len(args.source or []) > 1
    if several and args.gui:
        print("avlive: --gui with several --source: the window shows one stream; run without --gui (JSON lines name "
              "each line's stream)", file=sys.stderr)
        return 2
    window = (args.gui or (display and not args.headless)) and not several

    from apps.native_stderr import ENV_VAR, NativeStderrFilter

    with NativeStderrFilter() as native:
        rc = _run(args, window)
    if native.dropped:
        print(f"avlive: {native.dropped} diagnostic lines of PortAudio and ALSA were kept off the terminal "
              f"({ENV_VAR}=1 shows them)", file=sys.stderr)
    return rc


def _run(args, window: bool) -> int:
    """The run itself, once the options are checked: 0, or the exit status of an error."""
    from engines.base import DeviceUnavailableError
    from models.io.media import MediaDecodeError
    from models.core.metadata import MetadataMismatch
    from realtime.devices import DeviceNotFound, PortAudioNotFound
    from realtime.models import ModelError, load_models
    from realtime.pipeline import (DEFAULT_HOP_S, PipelineConfig, PipelineError, build_streams, check_sources,
                                   localizer_every_for, plays_the_world, run_pipeline, with_device_source)
    from realtime.sources import SourceError

    jsonl = None if args.jsonl == "none" else args.jsonl or (None if window else "-")
    bad_input = (ModelError, PipelineError, DeviceNotFound, PortAudioNotFound, MetadataMismatch, FileNotFoundError,
                 MediaDecodeError, DeviceUnavailableError)
    models = None
    previous_handlers = _stop_on_signals()
    try:
        hop = args.hop if args.hop is not None else DEFAULT_HOP_S  # the labeler may change the default below
        every = args.localizer_every  # None: about every LOCALIZER_PERIOD_S seconds at the hop
        recovery = _recovery(args)
        sources = args.source or []
        config = PipelineConfig(source=sources[0] if len(sources) == 1 else None, camera=args.camera, mic=args.mic, hop_s=hop, recovery=recovery,
                                localizer_every=every if every is not None else localizer_every_for(hop),
                                realtime=args.realtime, av_offset_ms=args.av_offset_ms, duration=args.duration,
                                jsonl=jsonl, events_out=args.events_out, scores_out=args.scores_out,
                                record=args.record)
        if len(sources) > 1:
            from realtime.multistream import check_multistream, stream_configs

            check_multistream(config, sources)
            per_stream = stream_configs(config, sources)
        else:
            config = with_device_source(config)  # --source camera:0+mic:default: the devices it names
            per_stream = [config]
        for stream_config in per_stream:
            check_sources(stream_config)
        video = args.camera != "none"
        real_input = any(not plays_the_world(c) for c in per_stream)
        models, notes = load_models(labeler=args.labeler, localizer=args.localizer, models=args.models,
                                    backend=args.backend, device=args.device, threads=args.threads, video=video,
                                    real_input=real_input, precision=args.precision, triton_url=args.triton_url)
        if args.hop is None and models.preferred_hop is not None:
            hop = models.preferred_hop
            config = dataclasses.replace(config, hop_s=hop,
                                         localizer_every=every if every is not None else localizer_every_for(hop))
        if len(sources) > 1:
            from realtime.multistream import run_streams

            for line in notes:
                print(f"avlive: {line}", file=sys.stderr)
            run_streams(config, sources, models)
            return 0
        streams = build_streams(config, models)
        for line in notes:  # after every check: a run that cannot start prints its one error line only
            print(f"avlive: {line}", file=sys.stderr)
        if window:
            _run_with_window(args, config, models, streams)
        else:
            if not args.headless:
                where = "on stdout" if jsonl == "-" else (f"to {jsonl}" if jsonl else "off")
                print(f"avlive: no display (DISPLAY and WAYLAND_DISPLAY are not set): running headless, JSON lines "
                      f"{where}", file=sys.stderr, flush=True)
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
