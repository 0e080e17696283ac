"""The `steno` command. Each layer registers its own subcommands; this file adds the serving ones
and dispatches."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path

from decoders import cli as decoders_cli
from decoders.language_model import tuned_options
from decoders.options import DecoderOptions
from models import DEFAULT_BUNDLE
from models import cli as models_cli


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=DEFAULT_BUNDLE, help="model bundle directory")
    parser.add_argument("--int8", action="store_true", help="use the bundle's int8 encoder")
    parser.add_argument("--threads", type=int, default=2, help="encoder threads")
    parser.add_argument("--no-lm", action="store_true", help="decode without the bundle's language model")
    parser.add_argument("--beam-size", type=int, default=DecoderOptions.beam_size,
                        help="hypotheses kept by the beam search: larger is more accurate and costs decoder CPU "
                             "about in proportion (default: %(default)s; README has the trade-off measured)")
    parser.add_argument("--no-speakers", action="store_true", help="no speaker tagging")
    parser.add_argument("--max-speakers", type=int, default=8, help="default cap per session (clients may set theirs)")
    parser.add_argument("--speaker-threshold", type=float, default=0.28,
                        help="cosine distance that opens a new speaker (lower: more speakers)")
    parser.add_argument("--summaries", choices=("local", "openai", "none"), default=os.environ.get("STENO_SUMMARIES", "local"),
                        help="topic summaries: the packaged local LLM, an OpenAI-compatible server, or none "
                             "(extractive bullets only) (default: $STENO_SUMMARIES or local)")
    parser.add_argument("--llm-url", default=os.environ.get("STENO_LLM_URL"),
                        help="OpenAI-compatible API base, e.g. http://127.0.0.1:8080/v1 (default: $STENO_LLM_URL)")
    parser.add_argument("--llm-model", default=os.environ.get("STENO_LLM_MODEL", "default"),
                        help="model name sent to --llm-url (default: $STENO_LLM_MODEL)")
    parser.add_argument("--llm-key", default=os.environ.get("STENO_LLM_KEY"),
                        help="API key for --llm-url (default: $STENO_LLM_KEY)")
    parser.add_argument("--llm-timeout", type=float, default=60.0, help="seconds per summary request")


def engine_options(args: argparse.Namespace, db: Path, mqtt=None):
    from streaming.engine import EngineOptions
    from streaming.speakers import SpeakerOptions
    from streaming.summaries import SummaryOptions

    if not (args.model / "config.json").exists() and args.model == DEFAULT_BUNDLE:
        raise SystemExit(f"error: the embedded default model is not in this checkout ({DEFAULT_BUNDLE}); "
                         "pass --model BUNDLE (`steno export --random -o DIR` makes an untrained one)")
    speakers = SpeakerOptions(enabled=not args.no_speakers, max_speakers=args.max_speakers,
                              threshold=args.speaker_threshold)
    if args.summaries == "openai" and not args.llm_url:
        raise SystemExit("error: --summaries openai needs --llm-url (or $STENO_LLM_URL)")
    summaries = SummaryOptions(backend=args.summaries, url=args.llm_url, model=args.llm_model, key=args.llm_key,
                               timeout=args.llm_timeout)
    if args.beam_size < 1:
        raise SystemExit(f"error: --beam-size must be at least 1, got {args.beam_size}")
    try:
        decoder = tuned_options(args.model / "lm", use_lm=not args.no_lm, beam_size=args.beam_size)
    except ValueError as exc:  # a malformed lm/fusion.json
        raise SystemExit(f"error: {exc}") from exc
    return EngineOptions(model=args.model, precision="int8" if args.int8 else "fp32", threads=args.threads,
                         db=db, use_lm=not args.no_lm, decoder=decoder, mqtt=mqtt, speakers=speakers,
                         summaries=summaries)


def register(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="run the WebSocket server")
    add_engine_arguments(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--vosk-port", type=int, help="also serve the Vosk protocol at / of this port")
    serve.add_argument("--db", type=Path, default=Path("steno-notes.sqlite3"), help="SQLite file for notes")
    serve.add_argument("--mqtt", metavar="HOST:PORT", help="publish events to this MQTT broker")
    serve.add_argument("--token", default=os.environ.get("STENO_TOKEN"),
                       help="require this token from clients (default: $STENO_TOKEN)")
    serve.add_argument("--allow-origin", action="append", default=[], help="allowed browser Origin (repeatable)")
    serve.add_argument("--max-sessions", type=int, default=64)
    serve.add_argument("--accept-when-behind", action="store_true",
                       help="accept new sessions even while most streams get less than real time through "
                            "(default: refuse them with too_many_sessions)")
    serve.add_argument("--max-frame-bytes", type=int, default=1 << 20)
    serve.add_argument("--idle-timeout", type=float, default=30.0)
    serve.add_argument("--certfile", type=Path, help="PEM certificate: serve TLS (wss://, https://), which "
                       "browsers need for microphones on other machines")
    serve.add_argument("--keyfile", type=Path, help="PEM private key of --certfile (if not inside it)")
    serve.set_defaults(func=run_serve)

    transcribe = commands.add_parser("transcribe", help="transcribe a file in-process (no server)")
    add_engine_arguments(transcribe)
    transcribe.add_argument("file")
    transcribe.add_argument("--json", action="store_true", help="print the events as a JSON array")
    transcribe.add_argument("--hotword", action="append", default=[], help="word or phrase to favour")
    transcribe.set_defaults(func=run_transcribe)

    stream = commands.add_parser("stream", help="stream a file to a server and print live captions")
    stream.add_argument("url", help="e.g. ws://127.0.0.1:8765/v1/listen")
    stream.add_argument("file")
    stream.add_argument("--speed", type=float, default=1.0, help="x real time; 0 = as fast as possible")
    stream.add_argument("--session-id")
    stream.add_argument("--hotword", action="append", default=[])
    stream.add_argument("--token", default=os.environ.get("STENO_TOKEN"))
    stream.set_defaults(func=run_stream)


def run_serve(args: argparse.Namespace) -> int:
    from streaming.mqtt import MqttOptions
    from streaming.server import ServerOptions, run_server

    if args.keyfile and not args.certfile:
        raise SystemExit("error: --keyfile needs --certfile")
    mqtt = MqttOptions.from_address(args.mqtt) if args.mqtt else None
    run_server(ServerOptions(engine=engine_options(args, args.db, mqtt), host=args.host, port=args.port,
                             vosk_port=args.vosk_port, token=args.token, allowed_origins=tuple(args.allow_origin),
                             max_sessions=args.max_sessions, refuse_when_behind=not args.accept_when_behind,
                             max_frame_bytes=args.max_frame_bytes,
                             idle_timeout=args.idle_timeout, certfile=args.certfile, keyfile=args.keyfile))
    return 0


def run_transcribe(args: argparse.Namespace) -> int:
    from streaming.transcribe import transcribe_file

    events = asyncio.run(transcribe_file(engine_options(args, Path(":memory:")), args.file, tuple(args.hotword)))
    if args.json:
        print(json.dumps(events, indent=1, ensure_ascii=False))
    else:
        for event in events:
            if event["type"] == "final":
                print(f"[{event['start']:7.2f}-{event['end']:7.2f}] {event['text']}")
    return 0


def run_stream(args: argparse.Namespace) -> int:
    from clients.stream import stream_file

    events = asyncio.run(stream_file(args.url, args.file, args.speed, tuple(args.hotword), args.session_id,
                                     args.token))
    return 1 if any(e["type"] == "error" for e in events) else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="steno", description="Streaming speech transcription.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register(commands)
    models_cli.register(commands)
    decoders_cli.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
