#!/usr/bin/env python3
"""Regenerate Miyabi's embedded model catalogue.

Reads the two public data sets described in shared/catalog/README.md:

* models.dev.catalog.json      (models.dev extract, MIT)
* mastra-provider-registry.json (Mastra's generated registry, Apache-2.0)

and writes crates/model/src/catalog/catalog.json, a compact JSON file that the
crate embeds with include_str! and parses lazily (one provider's models at a
time). Usage:

    python3 scripts/gen-catalog.py [CATALOG_DIR] [OUTPUT]

CATALOG_DIR defaults to ../shared/catalog relative to the repository root.
The output is deterministic (sorted providers and models) so regenerating from
the same inputs gives an identical file.
"""
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "catalog")
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "crates", "model", "src", "catalog", "catalog.json")

# The AI SDK package a provider declares names its wire protocol.
NPM_PROTOCOL = {
    "@ai-sdk/openai-compatible": "openai-chat",
    "@ai-sdk/cerebras": "openai-chat",
    "@ai-sdk/deepinfra": "openai-chat",
    "@ai-sdk/groq": "openai-chat",
    "@ai-sdk/togetherai": "openai-chat",
    "@ai-sdk/vercel": "openai-chat",
    "@ai-sdk/xai": "openai-chat",
    "@ai-sdk/perplexity": "openai-chat",
    "@ai-sdk/mistral": "openai-chat",
    "@ai-sdk/gateway": "openai-chat",
    "@openrouter/ai-sdk-provider": "openai-chat",
    "venice-ai-sdk-provider": "openai-chat",
    "@aihubmix/ai-sdk-provider": "openai-chat",
    "ai-gateway-provider": "openai-chat",
    "gitlab-ai-provider": "openai-chat",
    "merge-gateway-ai-sdk-provider": "openai-chat",
    "@jerome-benoit/sap-ai-provider-v2": "openai-chat",
    "@ai-sdk/openai": "openai-responses",
    "@ai-sdk/azure": "openai-responses",
    "@ai-sdk/amazon-bedrock/mantle": "openai-responses",
    "@ai-sdk/anthropic": "anthropic",
    "@ai-sdk/google": "gemini",
    "@ai-sdk/google-vertex": "vertex-gemini",
    "@ai-sdk/google-vertex/anthropic": "vertex-anthropic",
    "@ai-sdk/cohere": "cohere",
    "@ai-sdk/amazon-bedrock": "bedrock",
}

# Base URLs that the data sets leave out because the provider's own SDK knows
# them (see shared/PROTOCOLS.md section 1b and models.dev.SUMMARY.md).
# `${VAR}` placeholders are filled from the environment at run time.
DEFAULT_BASE = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com/v1",
    "google": "https://generativelanguage.googleapis.com/v1beta",
    "cohere": "https://api.cohere.com/v2",
    "mistral": "https://api.mistral.ai/v1",
    "groq": "https://api.groq.com/openai/v1",
    "cerebras": "https://api.cerebras.ai/v1",
    "deepinfra": "https://api.deepinfra.com/v1/openai",
    "togetherai": "https://api.together.xyz/v1",
    "perplexity": "https://api.perplexity.ai",
    "xai": "https://api.x.ai/v1",
    "v0": "https://api.v0.dev/v1",
    "venice": "https://api.venice.ai/api/v1",
    "vercel": "https://ai-gateway.vercel.sh/v1",
    "aihubmix": "https://aihubmix.com/v1",
    "azure": "https://${AZURE_RESOURCE_NAME}.openai.azure.com/openai/v1",
    "azure-cognitive-services": "https://${AZURE_COGNITIVE_SERVICES_RESOURCE_NAME}.cognitiveservices.azure.com/openai/v1",
    "amazon-bedrock": "https://bedrock-runtime.${AWS_REGION}.amazonaws.com",
    "google-vertex": "https://${GOOGLE_VERTEX_LOCATION}-aiplatform.googleapis.com/v1/projects/${GOOGLE_VERTEX_PROJECT}/locations/${GOOGLE_VERTEX_LOCATION}",
    "google-vertex-anthropic": "https://${GOOGLE_VERTEX_LOCATION}-aiplatform.googleapis.com/v1/projects/${GOOGLE_VERTEX_PROJECT}/locations/${GOOGLE_VERTEX_LOCATION}",
    "cloudflare-ai-gateway": "https://gateway.ai.cloudflare.com/v1/${CLOUDFLARE_ACCOUNT_ID}/${CLOUDFLARE_GATEWAY_ID}/compat",
}

# Providers whose endpoint is per-customer and not derivable from the data:
# the user must configure the base URL (the error message names the variable).
NEEDS_BASE = {
    "gitlab": "GitLab Duo proxies OpenAI/Anthropic behind a per-instance URL and a token exchange",
    "sap-ai-core": "SAP AI Core serves per-deployment URLs from the service key",
    "netlify": "Netlify's AI gateway URL is injected into the site's environment",
}

# Key variables that are credentials with a non-default header.
AUTH = {
    "azure": "api-key",
    "azure-cognitive-services": "api-key",
}

# Extra credential variables (never base-URL parts) per provider.
EXTRA_KEY_ENV = {
    "google-vertex": ["GOOGLE_VERTEX_ACCESS_TOKEN"],
    "google-vertex-anthropic": ["GOOGLE_VERTEX_ACCESS_TOKEN"],
}

NON_KEY_ENV = re.compile(r"(_RESOURCE_NAME|_PROJECT|_LOCATION|_REGION|_ENDPOINT|_HOST|_ACCOUNT|_ACCOUNT_ID|_GATEWAY_ID|_SITE_ID|_PRODUCT_ID|_BASE_URL|APPLICATION_CREDENTIALS|AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY)$")

TEMPLATE = re.compile(r"\$\{([A-Z0-9_]+)\}")


def load(name):
    with open(os.path.join(SRC, name), encoding="utf-8") as f:
        return json.load(f)


def model_facts(m):
    out = {"id": m["id"]}
    if m.get("name") and m["name"] != m["id"]:
        out["name"] = m["name"]
    if m.get("family"):
        out["family"] = m["family"]
    caps = 0
    for bit, key in enumerate(["tool_call", "reasoning", "attachment", "structured_output", "temperature", "open_weights"]):
        if m.get(key):
            caps |= 1 << bit
    out["caps"] = caps
    lim = m.get("limit") or {}
    if lim.get("context"):
        out["ctx"] = lim["context"]
    if lim.get("output"):
        out["out"] = lim["output"]
    if lim.get("input"):
        out["inp"] = lim["input"]
    cost = m.get("cost") or {}
    c = [cost.get("input"), cost.get("output"), cost.get("cache_read"), cost.get("cache_write")]
    if any(x is not None for x in c):
        while c and c[-1] is None:
            c.pop()
        out["cost"] = c
    mods = m.get("modalities") or {}
    if mods.get("input") and mods["input"] != ["text"]:
        out["mi"] = mods["input"]
    if mods.get("output") and mods["output"] != ["text"]:
        out["mo"] = mods["output"]
    if m.get("status"):
        out["status"] = m["status"]
    if m.get("release_date"):
        out["rel"] = m["release_date"]
    return out


def override(ov, provider_protocol):
    """Per-model protocol / base URL override (models.dev `provider` table or Mastra modelOverrides)."""
    res = {}
    proto = None
    if ov.get("npm"):
        proto = NPM_PROTOCOL.get(ov["npm"], "openai-chat")
    shape = ov.get("shape")
    if shape:
        base = proto or provider_protocol
        if base in ("openai-chat", "openai-responses"):
            proto = "openai-responses" if shape == "responses" else "openai-chat"
    if proto and proto != provider_protocol:
        res["protocol"] = proto
    if ov.get("api"):
        res["api"] = ov["api"]
    return res


def main():
    md = load("models.dev.catalog.json")
    ms = load("mastra-provider-registry.json")
    md_by_id = {p["id"]: p for p in md["providers"]}
    ms_by_id = ms["providers"]
    ids = sorted(set(md_by_id) | set(ms_by_id))
    providers = []
    for pid in ids:
        a = md_by_id.get(pid)
        b = ms_by_id.get(pid)
        sources = [s for s, x in (("models.dev", a), ("mastra", b)) if x]
        npm = (a or {}).get("npm") or (b or {}).get("npm") or "@ai-sdk/openai-compatible"
        protocol = NPM_PROTOCOL.get(npm, "openai-chat")
        base = (a or {}).get("api") or (b or {}).get("url") or DEFAULT_BASE.get(pid)
        if pid in DEFAULT_BASE and not (a or {}).get("api"):
            base = DEFAULT_BASE[pid]
        env = list((a or {}).get("env") or [])
        bk = (b or {}).get("apiKeyEnvVar")
        for v in ([bk] if isinstance(bk, str) else (bk or [])):
            if v not in env:
                env.append(v)
        template_vars = TEMPLATE.findall(base or "")
        key_env = [v for v in env if v not in template_vars and not NON_KEY_ENV.search(v)]
        key_env += [v for v in EXTRA_KEY_ENV.get(pid, []) if v not in key_env]
        config_env = []
        for v in template_vars + [v for v in env if v not in key_env]:
            if v not in config_env:
                config_env.append(v)
        p = {"id": pid, "name": (a or {}).get("name") or (b or {}).get("name") or pid, "protocol": protocol}
        if pid in NEEDS_BASE:
            p["base"] = None
            p["note"] = NEEDS_BASE[pid]
        else:
            p["base"] = base
        p["key_env"] = key_env
        if config_env:
            p["config_env"] = config_env
        if pid in AUTH:
            p["auth"] = AUTH[pid]
        doc = (a or {}).get("doc") or (b or {}).get("docUrl")
        if doc:
            p["doc"] = doc
        p["sources"] = sources
        # Models: the newer Mastra list plus every models.dev model; facts from models.dev.
        facts = {m["id"]: m for m in (a or {}).get("models", [])}
        names = list((b or {}).get("models") or [])
        for mid in facts:
            if mid not in names:
                names.append(mid)
        deprecated = set((b or {}).get("deprecatedModels") or [])
        mo = (b or {}).get("modelOverrides") or {}
        models = []
        for mid in sorted(set(names)):
            m = model_facts(facts[mid]) if mid in facts else {"id": mid}
            if mid in deprecated and "status" not in m:
                m["status"] = "deprecated"
            ov = {}
            if mid in facts and facts[mid].get("provider"):
                ov.update(override(facts[mid]["provider"], protocol))
            elif mid in mo:
                ov.update(override(mo[mid], protocol))
            m.update(ov)
            models.append(m)
        p["models"] = models
        providers.append(p)
    out = {
        "version": 1,
        "sources": {
            "models.dev": {"commit": md.get("commit"), "license": "MIT", "providers": len(md_by_id)},
            "mastra": {"version": "@mastra/core@1.71.0 provider-registry.json", "license": "Apache-2.0", "providers": len(ms_by_id)},
        },
        "providers": providers,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        # One provider per line keeps diffs of regenerated files readable.
        f.write('{"version":1,"sources":' + json.dumps(out["sources"], separators=(",", ":"), sort_keys=True) + ',"providers":[\n')
        for i, p in enumerate(providers):
            f.write(json.dumps(p, separators=(",", ":"), ensure_ascii=False))
            f.write(",\n" if i + 1 < len(providers) else "\n")
        f.write("]}\n")
    nmodels = sum(len(p["models"]) for p in providers)
    print(f"wrote {OUT}: {len(providers)} providers, {nmodels} models, {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
