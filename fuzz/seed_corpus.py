#!/usr/bin/env python3
"""Writes seed corpora for the cargo-fuzz targets from the recorded fixtures in
core/tests/fixtures (framed as on the wire, like the tests do), and retry hints.

    python3 fuzz/seed_corpus.py      # then: cargo +nightly fuzz run decoders corpus/decoders
"""
import json
import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent
FIX = ROOT.parent / "core" / "tests" / "fixtures"
# Index in miyabi::model::Protocol::ALL.
PROTOCOLS = {
    "openai-chat": 0,
    "openai-responses": 1,
    "anthropic-messages": 2,
    "gemini-generateContent": 3,
    "cohere-v2-chat": 6,
    "bedrock-converse": 7,
    "ollama": 8,
}


def frame(family, raw):
    out = []
    for line in raw.decode().splitlines():
        if not line.strip():
            continue
        if family == "openai-chat":
            out.append(f"data: {line}\n\n")
        elif family == "gemini-generateContent":
            out.append(f"data: {line}\r\n\r\n")
        else:
            ty = json.loads(line).get("type", "message")
            out.append(f"event: {ty}\ndata: {line}\n\n")
    if family == "openai-chat":
        out.append("data: [DONE]\n\n")
    return "".join(out).encode()


def streams():
    expected = json.loads((FIX / "expected.json").read_text())
    for path, rec in sorted(expected.items()):
        family = rec["family"].split(" ")[0]
        if family not in PROTOCOLS or family == "bedrock-converse":
            continue
        if not rec["kind"].startswith("stream"):
            continue
        raw = (FIX / path).read_bytes()
        body = frame(family, raw) if path.endswith(".chunks.txt") else raw
        yield PROTOCOLS[family], path, body
    for p in sorted((FIX / "amazon-bedrock" / "derived-binary").glob("*.bin")):
        yield PROTOCOLS["bedrock-converse"], str(p.relative_to(FIX)), p.read_bytes()
    for p in sorted((FIX / "synthetic").glob("*ollama-chat*.ndjson")):
        yield PROTOCOLS["ollama"], str(p.relative_to(FIX)), p.read_bytes()


def write(target, name, data):
    d = ROOT / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name.replace("/", "__")).write_bytes(data)


n = 0
for idx, path, body in streams():
    # decoders: first byte % 9 = protocol index, first byte // 16 + 1 = split size
    write("decoders", path + ".whole", bytes([idx + 9 * 16]) + body)  # step 10
    write("decoders", path + ".small", bytes([idx]) + body)  # step 1
    if idx == PROTOCOLS["bedrock-converse"]:
        write("event_stream", path, bytes([7]) + body)
    else:
        write("sse", path, bytes([5]) + body)
    n += 1
# retry_after: header values and Gemini error bodies (the recorded 429 and hostile values).
HINTS = ["30", "0.5", "1e20", "-5", "NaN", "inf", "34.4s", "1e20s",
         "Sun, 06 Nov 1994 08:49:37 GMT", "Fri, 31 Dec 9999 23:59:59 GMT"]
for i, h in enumerate(HINTS):
    write("retry_after", f"hint-{i}", h.encode())
write("retry_after", "google-429-retry-info.json",
      (FIX / "google" / "google-429-retry-info.json").read_bytes())
print(f"{n} seed streams written under {os.path.relpath(ROOT / 'corpus')}")
