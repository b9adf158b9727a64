"""Settings that image-generation front-ends write into files, parsed into :class:`GeneratorInfo`.

One table, :data:`TEXT_KEY_PARSERS`, maps a text-chunk key (PNG ``tEXt``/``iTXt``/``zTXt``) to its parser; a parser
returns ``None`` when the text is not what that front-end writes (so an unrelated ``prompt`` chunk is not a claim).
:data:`GENERATOR_NAMES` recognises generators named in software fields (EXIF ``Software``, XMP ``CreatorTool``...).
All of this is unsigned: anyone can write or strip it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from hubdet.provenance.record import GeneratorInfo

#: Longest prompt / text value kept in the record (characters).
MAX_TEXT = 4000

#: A known generator named in a software field: (display name, case-insensitive pattern).
GENERATOR_NAMES: tuple[tuple[str, str], ...] = (
    ("NovelAI", r"\bnovel ?ai\b"),
    ("Midjourney", r"\bmidjourney\b"),
    ("DALL-E", r"\bdall[-\u00b7\u2022 ]?e\b"),
    ("Adobe Firefly", r"\bfirefly\b"),
    ("Stable Diffusion", r"\bstable[- ]?diffusion\b|\bsdxl\b"),
    ("AUTOMATIC1111", r"\bautomatic1111\b"),
    ("ComfyUI", r"\bcomfy ?ui\b"),
    ("InvokeAI", r"\binvoke ?ai\b"),
    ("Fooocus", r"\bfooocus\b"),
    ("Google Imagen", r"\bimagen\b"),
    ("Google Gemini", r"\bgemini\b"),
    ("Leonardo.Ai", r"\bleonardo\.?ai\b"),
    ("Ideogram", r"\bideogram\b"),
    ("FLUX", r"\bflux\.1\b|\bblack forest labs\b"),
    ("Bing Image Creator", r"\bbing image creator\b"),
    ("Craiyon", r"\bcraiyon\b"),
    ("DreamStudio", r"\bdreamstudio\b"),
    ("Draw Things", r"\bdraw things\b"),
    ("DiffusionBee", r"\bdiffusionbee\b"),
)
_NAME_RES = tuple((name, re.compile(pattern, re.IGNORECASE)) for name, pattern in GENERATOR_NAMES)


def name_generator(text: str) -> str | None:
    """The known generator that ``text`` (a software field) names, if any."""
    for name, regex in _NAME_RES:
        if regex.search(text):
            return name
    return None


def _clip(value: Any) -> str | None:
    if value is None or value == "":
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + " [...]"


def _int(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


# --- AUTOMATIC1111 (and the front-ends that copy its format: Forge, SD.Next, Fooocus's a1111 scheme) -------------

#: AUTOMATIC1111's own pattern for one ``Key: value`` pair of the settings line (values may be JSON-quoted).
_A1111_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_A1111_FIELDS = {"Steps": "steps", "Sampler": "sampler", "CFG scale": "cfg_scale", "Seed": "seed",
                 "Size": "size", "Model": "model", "Model hash": "model_hash"}


def parse_a1111(text: str, where: str) -> GeneratorInfo | None:
    """``prompt\\nNegative prompt: ...\\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, ...``.

    The last line counts as the settings line when it holds at least three ``Key: value`` pairs (AUTOMATIC1111's
    own rule); without a ``Steps`` or ``Seed`` there it is not taken for generator settings.
    """
    if not text or text.lstrip().startswith("{"):
        return None
    *lines, last = text.strip().split("\n")
    params = _A1111_PARAM.findall(last)
    if len(params) < 3:
        return None
    settings: dict[str, str] = {}
    for key, value in params:
        value = value.strip()
        if value.startswith('"') and value.endswith('"'):
            decoded = _json(value)
            value = decoded if isinstance(decoded, str) else value.strip('"')
        settings[key.strip()] = value
    if "Steps" not in settings and "Seed" not in settings:
        return None
    prompt: list[str] = []
    negative: list[str] = []
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            negative.append(line[len("Negative prompt:"):].strip())
        elif negative:
            negative.append(line)
        else:
            prompt.append(line)
    fields: dict[str, Any] = {attr: settings.pop(key) for key, attr in _A1111_FIELDS.items() if key in settings}
    return GeneratorInfo(
        tool="AUTOMATIC1111", where=where, prompt=_clip("\n".join(prompt)), negative_prompt=_clip("\n".join(negative)),
        steps=_int(fields.get("steps")), sampler=fields.get("sampler"), cfg_scale=_float(fields.get("cfg_scale")),
        seed=_int(fields.get("seed")), size=fields.get("size"), model=fields.get("model"),
        model_hash=fields.get("model_hash"), extra={k: _clip(v) for k, v in settings.items()},
    )


def _pick(data: dict[str, Any], *names: str) -> Any:
    lower = {str(k).lower(): v for k, v in data.items()}
    for name in names:
        if name.lower() in lower and lower[name.lower()] not in (None, ""):
            return lower[name.lower()]
    return None


def _from_settings(tool: str, where: str, data: dict[str, Any]) -> GeneratorInfo:
    """A flat JSON of settings (Fooocus, SwarmUI, NovelAI ``Comment``, InvokeAI) into a :class:`GeneratorInfo`."""
    model = _pick(data, "model", "base model", "model_name", "sd_model_name")
    if isinstance(model, dict):
        model = _pick(model, "name", "model_name", "key")
    width, height = _pick(data, "width"), _pick(data, "height")
    size = _pick(data, "size", "resolution")
    if size is None and width and height:
        size = f"{width}x{height}"
    return GeneratorInfo(
        tool=tool, where=where,
        prompt=_clip(_pick(data, "prompt", "positive_prompt", "full prompt")),
        negative_prompt=_clip(_pick(data, "negative_prompt", "negative prompt", "negativeprompt", "uc")),
        steps=_int(_pick(data, "steps")), sampler=_clip(_pick(data, "sampler", "sampler_name", "scheduler")),
        cfg_scale=_float(_pick(data, "cfg_scale", "cfgscale", "guidance scale", "scale", "cfg")),
        seed=_int(_pick(data, "seed", "noise_seed")), size=_clip(size), model=_clip(model),
        model_hash=_clip(_pick(data, "model_hash", "base model hash")),
    )


def parse_parameters(text: str, where: str) -> GeneratorInfo | None:
    """The ``parameters`` key: AUTOMATIC1111 text, or the JSON that Fooocus / SwarmUI write under the same key."""
    info = parse_a1111(text, where)
    if info is not None or not text.lstrip().startswith("{"):
        return info
    data = _json(text)
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("sui_image_params"), dict):
        return _from_settings("SwarmUI", where, data["sui_image_params"])
    version = str(_pick(data, "version") or "")
    if "fooocus" in version.lower() or "fooocus_scheme" in {str(k).lower() for k in data}:
        return _from_settings("Fooocus", where, data)
    return None


# --- ComfyUI -----------------------------------------------------------------------------------------------------

_MODEL_INPUTS = ("ckpt_name", "unet_name", "model_name")


def _node_text(graph: dict[str, Any], link: Any, depth: int = 0) -> str | None:
    """The prompt text a sampler's ``positive``/``negative`` link leads to (through a few encoder nodes)."""
    if depth > 4 or not isinstance(link, list) or not link:
        return None
    node = graph.get(str(link[0]))
    inputs = node.get("inputs") if isinstance(node, dict) else None
    if not isinstance(inputs, dict):
        return None
    for key in ("text", "text_g", "prompt"):
        if isinstance(inputs.get(key), str):
            return inputs[key]
    for key in ("conditioning", "conditioning_1", "positive"):
        if key in inputs:
            return _node_text(graph, inputs[key], depth + 1)
    return None


def parse_comfyui_prompt(text: str, where: str) -> GeneratorInfo | None:
    """ComfyUI's API graph (``prompt``): ``{node_id: {"class_type": ..., "inputs": {...}}}``; checkpoints, sampler."""
    graph = _json(text)
    if not isinstance(graph, dict) or not graph:
        return None
    nodes = [n for n in graph.values() if isinstance(n, dict) and "class_type" in n]
    if not nodes:
        return None
    info = GeneratorInfo(tool="ComfyUI", where=where)
    loras: list[str] = []
    for node in nodes:
        inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
        info.checkpoints += [str(inputs[k]) for k in _MODEL_INPUTS if isinstance(inputs.get(k), str)]
        if isinstance(inputs.get("lora_name"), str):
            loras.append(inputs["lora_name"])
        if info.steps is None and "steps" in inputs and "Sampler" in str(node.get("class_type")):
            info.steps = _int(inputs.get("steps"))
            info.seed = _int(_pick(inputs, "seed", "noise_seed"))
            info.cfg_scale = _float(inputs.get("cfg"))
            info.sampler = _clip(inputs.get("sampler_name"))
            info.prompt = _clip(_node_text(graph, inputs.get("positive")))
            info.negative_prompt = _clip(_node_text(graph, inputs.get("negative")))
    info.model = info.checkpoints[0] if info.checkpoints else None
    if loras:
        info.extra["loras"] = loras
    info.extra["nodes"] = len(nodes)
    return info


def parse_comfyui_workflow(text: str, where: str) -> GeneratorInfo | None:
    """ComfyUI's UI graph (``workflow``): ``{"nodes": [{"type": ..., "widgets_values": [...]}, ...]}``."""
    graph = _json(text)
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
        return None
    info = GeneratorInfo(tool="ComfyUI", where=where, extra={"nodes": len(graph["nodes"])})
    for node in graph["nodes"]:
        if not isinstance(node, dict):
            continue
        values = node.get("widgets_values")
        kind = str(node.get("type", ""))
        if ("CheckpointLoader" in kind or "UNETLoader" in kind) and isinstance(values, list) and values:
            if isinstance(values[0], str):
                info.checkpoints.append(values[0])
    info.model = info.checkpoints[0] if info.checkpoints else None
    return info


# --- InvokeAI, NovelAI, Midjourney ------------------------------------------------------------------------------


def parse_invokeai(text: str, where: str) -> GeneratorInfo | None:
    """InvokeAI 3+ ``invokeai_metadata`` JSON (older ``sd-metadata``: ``{"image": {...}, "model_weights": ...}``)."""
    data = _json(text)
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("image"), dict):  # sd-metadata (InvokeAI 2)
        image = dict(data["image"])
        prompt = image.get("prompt")
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], dict):
            image["prompt"] = prompt[0].get("prompt")
        image.setdefault("model", data.get("model_weights"))
        info = _from_settings("InvokeAI", where, image)
    else:
        info = _from_settings("InvokeAI", where, data)
    if data.get("app_version"):
        info.extra["app_version"] = str(data["app_version"])
    return info


def parse_novelai_comment(text: str, where: str) -> GeneratorInfo | None:
    """NovelAI's ``Comment`` JSON (with ``Software: NovelAI``)."""
    data = _json(text)
    if not isinstance(data, dict):
        return None
    return _from_settings("NovelAI", where, data)


def parse_description(text: str, where: str) -> GeneratorInfo | None:
    """Midjourney's ``Description``: ``<prompt> --ar 16:9 --v 6 Job ID: <uuid>``."""
    match = re.search(r"\bJob ID:\s*([0-9a-fA-F-]{8,})", text)
    if not match:
        return None
    return GeneratorInfo(tool="Midjourney", where=where, prompt=_clip(text[:match.start()].strip()),
                         extra={"job_id": match.group(1)})


#: Text-chunk key -> parser. Keys are matched exactly (PNG keywords are case-sensitive).
TEXT_KEY_PARSERS: dict[str, Callable[[str, str], GeneratorInfo | None]] = {
    "parameters": parse_parameters,
    "prompt": parse_comfyui_prompt,
    "workflow": parse_comfyui_workflow,
    "invokeai_metadata": parse_invokeai,
    "sd-metadata": parse_invokeai,
    "Description": parse_description,
}


def parse_text_chunks(texts: dict[str, str], prefix: str) -> list[GeneratorInfo]:
    """Every generator the text chunks of one file reveal (ComfyUI's two graphs merged into one entry)."""
    found: list[GeneratorInfo] = []
    for key, parser in TEXT_KEY_PARSERS.items():
        if isinstance(texts.get(key), str):
            info = parser(texts[key], f"{prefix}:{key}")
            if info is not None:
                found.append(info)
    comfy = [g for g in found if g.tool == "ComfyUI"]
    if len(comfy) == 2:  # prompt (API graph: settings) + workflow (UI graph): one entry
        api, ui = comfy
        api.where += f" + {ui.where}"
        api.checkpoints = api.checkpoints or ui.checkpoints
        api.model = api.model or ui.model
        found.remove(ui)
    software = texts.get("Software")
    if isinstance(software, str) and name_generator(software) == "NovelAI":
        info = parse_novelai_comment(texts.get("Comment") or "", f"{prefix}:Comment") or GeneratorInfo(
            tool="NovelAI", where=f"{prefix}:Software")
        info.model = info.model or _clip(texts.get("Source"))
        info.prompt = info.prompt or _clip(texts.get("Description"))
        found.append(info)
    if "Dream" in texts and not any(g.tool == "InvokeAI" for g in found):
        found.append(GeneratorInfo(tool="InvokeAI", where=f"{prefix}:Dream", prompt=_clip(texts["Dream"])))
    return found
