"""Provenance evidence: C2PA (real fixtures and manifests signed here offline), XMP / EXIF / generator chunks, bad
input, the record, ``hubdet provenance`` and the ``provenance`` object of ``hubdet predict --json``."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from hubdet._core.errors import ConfigError
from hubdet.cli import main
from hubdet.provenance import Provenance, inspect
from hubdet.provenance.generators import parse_a1111, parse_comfyui_prompt

DST = "http://cv.iptc.org/newscodes/digitalsourcetype/"


def check(record: Provenance) -> Provenance:
    """What every record must satisfy: JSON round trip, a known conclusion, a reason, never "authentic"."""
    data = record.to_dict()
    assert Provenance.from_dict(json.loads(json.dumps(data))).to_dict() == data
    assert record.conclusion in ("declared_ai", "declared_ai_edit", "declared_capture", "no_claim", "invalid_claim")
    assert record.reason and "authentic" not in json.dumps(data).lower()
    assert record.summary().startswith(record.conclusion)
    return record


# --- fixtures ------------------------------------------------------------------------------------------------



@pytest.fixture(scope="module")
def c2pa_mod():
    return pytest.importorskip("c2pa")


@pytest.fixture(scope="module")
def sign(prov_dir: Path, c2pa_mod):
    """``sign(source_bytes, actions, ingredients=(), mime=...) -> signed bytes`` with the CAI test certificate."""
    certs = (prov_dir / "es256_certs.pem").read_bytes()
    key = (prov_dir / "es256_private.key").read_bytes()

    def _sign(source: bytes, actions: list[dict], ingredients: tuple = (), mime: str = "image/jpeg",
              generator: str = "hubdet-tests") -> bytes:
        manifest = {"claim_generator_info": [{"name": generator, "version": "1.0"}],
                    "assertions": [{"label": "c2pa.actions", "data": {"actions": actions}}]}
        signer = c2pa_mod.Signer.from_info(
            c2pa_mod.C2paSignerInfo(alg=b"es256", sign_cert=certs, private_key=key, ta_url=None))
        with c2pa_mod.Builder(manifest) as builder:
            for ingredient, data in ingredients:
                builder.add_ingredient(ingredient, "image/jpeg", io.BytesIO(data))
            out = io.BytesIO()
            builder.sign(signer, mime, io.BytesIO(source), out)
        return out.getvalue()

    return _sign


@pytest.fixture(scope="module")
def photo(prov_dir: Path) -> bytes:
    return (prov_dir / "A.jpg").read_bytes()


@pytest.fixture(scope="module")
def generated(sign, photo: bytes) -> bytes:
    return sign(photo, [{"action": "c2pa.created", "digitalSourceType": DST + "trainedAlgorithmicMedia",
                         "softwareAgent": {"name": "TestDiffusion", "version": "2"}}])


def _opened(*more: dict) -> list[dict]:
    return [{"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]}}, *more]


def _png(tmp_path: Path, texts: dict[str, str], name: str = "gen.png") -> Path:
    info = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    path = tmp_path / name
    Image.new("RGB", (32, 24), (40, 90, 160)).save(path, pnginfo=info)
    return path


def _jpeg(tmp_path: Path, name: str = "x.jpg", **save_kw) -> Path:
    path = tmp_path / name
    Image.new("RGB", (32, 24), (200, 120, 40)).save(path, quality=90, **save_kw)
    return path


def _xmp(inner: str, attrs: str = "") -> bytes:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
        'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        f'{attrs}>{inner}</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


# --- the real c2pa-python fixtures ------------------------------------------------------------------------------


def test_signed_fixture_validates_with_an_untrusted_signer(prov_dir, c2pa_mod):
    r = check(inspect(prov_dir / "C.jpg"))
    c = r.c2pa
    assert c.present and c.embedded and c.validation_state == "Valid"
    assert c.failures == ["signingCredential.untrusted"]
    assert "claimSignature.validated" in {v.code for v in c.validation_codes if v.status == "success"}
    assert c.claim_generator.startswith("make_test_images") and c.signer_common_name == "C2PA Signer"
    assert c.signer_issuer == "C2PA Test Signing Cert" and c.signing_time.startswith("2023-09-29")
    assert [a.action for a in c.actions] == ["c2pa.created"]
    # it declares algorithmicMedia: recorded, signed, but none of the deciding categories
    assert [(s.term, s.signed) for s in r.source_types] == [("algorithmicMedia", True)]
    assert r.conclusion == "no_claim" and "not on a trust list" in r.reason and not r.errors


def test_signed_fixture_with_an_ingredient(prov_dir, c2pa_mod):
    r = check(inspect(prov_dir / "CA.jpg"))
    assert r.c2pa.validation_state == "Valid" and r.conclusion == "no_claim"
    assert [(i.title, i.relationship, i.has_manifest) for i in r.c2pa.ingredients] == [("A.jpg", "parentOf", False)]
    assert [a.action for a in r.c2pa.actions] == ["c2pa.opened", "c2pa.color_adjustments"]


@pytest.mark.parametrize(("name", "code"), [("XCA.jpg", "assertion.dataHash.mismatch"),
                                            ("E-sig-CA.jpg", "claimSignature.mismatch")])
def test_tampered_and_badly_signed_fixtures_are_invalid_claims(prov_dir, c2pa_mod, name, code):
    r = check(inspect(prov_dir / name))
    assert r.c2pa.validation_state == "Invalid" and code in r.c2pa.failures
    assert r.conclusion == "invalid_claim" and not r.signed and code in r.reason
    assert "fails validation" in r.summary()


def test_no_manifest_is_no_claim_that_proves_nothing(prov_dir, c2pa_mod):
    r = check(inspect(prov_dir / "A.jpg"))
    assert r.c2pa.checked and not r.c2pa.present and r.conclusion == "no_claim"
    assert "proves nothing" in r.reason and r.format == "JPEG" and not r.errors
    assert r.software["exif:Make"] == "Canon" and "Lightroom" in r.software["exif:Software"]
    assert {"c2pa", "xmp", "exif"} <= set(r.checked)


def test_remote_manifest_is_not_fetched(prov_dir, c2pa_mod):
    r = check(inspect(prov_dir / "cloud.jpg"))
    assert r.c2pa.present and not r.c2pa.embedded and r.c2pa.remote_url.startswith("https://")
    assert r.conclusion == "no_claim" and "not fetched" in r.reason


# --- manifests signed here ------------------------------------------------------------------------------------


def test_signed_ai_generation_is_declared_ai(generated):
    r = check(inspect(generated, name="gen.jpg"))
    assert r.source == "gen.jpg" and r.conclusion == "declared_ai" and r.signed
    assert r.c2pa.actions[0].digital_source_type == DST + "trainedAlgorithmicMedia"
    assert r.c2pa.actions[0].software_agent == "TestDiffusion/2" and r.c2pa.claim_generator == "hubdet-tests/1.0"
    assert r.summary() == "declared_ai (C2PA, signer not on a trust list)"
    assert "trainedAlgorithmicMedia" in r.reason and "unverified" in r.reason


def test_signed_ai_edit_and_capture(sign, photo):
    edit = {"action": "c2pa.edited", "digitalSourceType": DST + "compositeWithTrainedAlgorithmicMedia",
            "softwareAgent": {"name": "Generative Fill"}}
    fill = sign(photo, _opened(edit), [({"title": "A.jpg", "relationship": "parentOf", "label": "parent"}, photo)])
    r = check(inspect(fill))
    assert r.conclusion == "declared_ai_edit" and r.signed
    assert [(i.title, i.relationship) for i in r.c2pa.ingredients] == [("A.jpg", "parentOf")]
    synthetic = check(inspect(sign(photo, [{"action": "c2pa.created",
                                            "digitalSourceType": DST + "compositeSynthetic"}])))
    assert synthetic.conclusion == "declared_ai_edit"
    capture = check(inspect(sign(photo, [{"action": "c2pa.created", "digitalSourceType": DST + "digitalCapture"}])))
    assert capture.conclusion == "declared_capture" and "not proof" in capture.reason


def test_ai_ingredients_count_through_the_edit_history(sign, photo, generated):
    edited = sign(photo, _opened({"action": "c2pa.color_adjustments"}),
                  [({"title": "gen.jpg", "relationship": "parentOf", "label": "parent"}, generated)])
    r = check(inspect(edited))
    assert r.conclusion == "declared_ai" and r.c2pa.ingredients[0].has_manifest
    assert r.source_types[0].relationship == "parentOf" and "gen.jpg" in r.reason
    composite = sign(photo, _opened({"action": "c2pa.placed", "parameters": {"ingredientIds": ["part"]}}),
                     [({"title": "A.jpg", "relationship": "parentOf", "label": "parent"}, photo),
                      ({"title": "gen.jpg", "relationship": "componentOf", "label": "part"}, generated)])
    assert check(inspect(composite)).conclusion == "declared_ai_edit"


def test_pixels_changed_after_signing_is_invalid_and_says_what_was_declared(generated):
    data = bytearray(generated)
    data[-600:-400] = bytes((i * 7) % 256 for i in range(200))  # inside the entropy-coded image data
    r = check(inspect(bytes(data)))
    assert r.conclusion == "invalid_claim" and "assertion.dataHash.mismatch" in r.c2pa.failures
    assert "trainedAlgorithmicMedia" in r.reason and not r.signed


def test_trust_anchors_make_the_signer_trusted(generated, prov_dir, tmp_path):
    r = check(inspect(generated, trust_anchors=str(prov_dir / "es256_certs.pem")))
    assert r.c2pa.validation_state == "Trusted" and r.c2pa.trusted and r.c2pa.failures == []
    assert r.summary() == "declared_ai (C2PA)" and "trust anchor" in r.reason
    with pytest.raises(FileNotFoundError, match="nope.pem"):
        inspect(generated, trust_anchors=str(tmp_path / "nope.pem"))


# --- damaged manifests and bad input ------------------------------------------------------------------------------


def _app11(data: bytes) -> tuple[int, int]:
    """Offset and length field of the first APP11 (JUMBF) segment of a JPEG."""
    i = 2
    while data[i] == 0xFF:
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if data[i + 1] == 0xEB:
            return i, length
        i += 2 + length
    raise AssertionError("no APP11 segment")


def test_truncated_manifest(prov_dir, c2pa_mod):
    data = (prov_dir / "C.jpg").read_bytes()
    start, length = _app11(data)
    short = length - 20000  # the JUMBF box claims more than the segment now holds
    cut = data[:start] + b"\xff\xeb" + short.to_bytes(2, "big") + data[start + 4:start + 2 + short] + \
        data[start + 2 + length:]
    r = check(inspect(cut))
    assert r.conclusion == "invalid_claim" and r.c2pa.present and r.c2pa.error
    assert any(e.startswith("C2PA: a C2PA manifest is present but malformed") for e in r.errors)


@pytest.mark.parametrize("offset", [30, 60, 40000])
def test_jumbf_box_with_garbage(prov_dir, c2pa_mod, offset):
    data = bytearray((prov_dir / "C.jpg").read_bytes())
    start, _ = _app11(bytes(data))
    data[start + offset:start + offset + 300] = bytes((i * 37 + 11) % 256 for i in range(300))
    r = check(inspect(bytes(data)))
    assert r.conclusion == "invalid_claim" and r.c2pa.present and not r.signed


def test_manifest_on_non_images(sign, prov_dir):
    pcm = io.BytesIO()
    with wave.open(pcm, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x01" * 400)
    audio = sign(pcm.getvalue(), [{"action": "c2pa.created", "digitalSourceType": DST + "trainedAlgorithmicMedia"}],
                 mime="audio/wav")
    r = check(inspect(audio, name="voice.wav"))
    assert r.format is None and r.c2pa.validation_state == "Valid"
    assert any("not an image" in e for e in r.errors)
    # a JPEG's manifest store pasted into a text file: present, unreadable, never a claim that holds
    data = (prov_dir / "C.jpg").read_bytes()
    start, length = _app11(data)
    text = b"notes\n" + data[start:start + 2 + length] + b"\nmore notes\n"
    r = check(inspect(text, name="notes.txt"))
    assert r.conclusion == "invalid_claim" and r.c2pa.present and any("not an image" in e for e in r.errors)


def test_unreadable_inputs_give_records_with_errors(tmp_path):
    cases = {"missing": tmp_path / "missing.jpg", "folder": tmp_path, "empty": tmp_path / "empty.png"}
    cases["empty"].write_bytes(b"")
    for path in cases.values():
        r = check(inspect(path))
        assert r.conclusion == "no_claim" and r.errors and not r.checked and str(path) in r.errors[0]
    truncated = _jpeg(tmp_path).read_bytes()[:200]
    r = check(inspect(truncated))
    assert r.conclusion == "no_claim"
    text = check(inspect(b"just some text, not an image"))
    assert text.conclusion == "no_claim" and any("not an image" in e for e in text.errors)


def test_huge_dtd_and_malformed_xmp(tmp_path):
    big = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><x:pad>' + "A" * (2 << 20) + "</x:pad></x:xmpmeta>"
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", big)
    path = tmp_path / "big.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    r = check(inspect(path))
    assert any("over the" in e and "cap" in e for e in r.errors) and r.conclusion == "no_claim"
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><x>&b;</x>'
    r = check(inspect(_jpeg(tmp_path, "dtd.jpg", xmp=bomb)))
    assert any("DTD" in e for e in r.errors)
    r = check(inspect(_jpeg(tmp_path, "bad.jpg", xmp=b"<x:xmpmeta><unclosed>")))
    assert any("malformed" in e for e in r.errors)


# --- unsigned metadata ---------------------------------------------------------------------------------------------

A1111 = ("a cat in a spacesuit, (masterpiece:1.2),\nfloating above the earth\n"
         "Negative prompt: blurry, low quality\nextra limbs\n"
         'Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 1234567890, Size: 832x1216, Model hash: '
         '31e35c80fc, Model: sd_xl_base_1.0, Lora hashes: "detail: abc123, style: def456", Version: v1.10.1')


def test_a1111_parameters():
    g = parse_a1111(A1111, "png:parameters")
    assert g.prompt == "a cat in a spacesuit, (masterpiece:1.2),\nfloating above the earth"
    assert g.negative_prompt == "blurry, low quality\nextra limbs"
    assert (g.steps, g.sampler, g.cfg_scale, g.seed, g.size) == (28, "DPM++ 2M Karras", 6.5, 1234567890, "832x1216")
    assert (g.model, g.model_hash) == ("sd_xl_base_1.0", "31e35c80fc")
    assert g.extra == {"Lora hashes": "detail: abc123, style: def456", "Version": "v1.10.1"}
    assert parse_a1111("just a caption, nothing more", "x") is None
    assert parse_a1111("a: 1, b: 2, c: 3", "x") is None  # pairs but no generator settings


def test_png_with_a1111_chunk_is_unsigned_declared_ai(tmp_path):
    r = check(inspect(_png(tmp_path, {"parameters": A1111})))
    assert r.conclusion == "declared_ai" and not r.signed and "Unsigned" in r.reason
    assert [(g.tool, g.where, g.seed) for g in r.generators] == [("AUTOMATIC1111", "png:parameters", 1234567890)]
    assert r.summary() == "declared_ai (unsigned metadata, AUTOMATIC1111)"


COMFY_PROMPT = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
    "10": {"class_type": "LoraLoader", "inputs": {"lora_name": "film.safetensors", "model": ["4", 0]}},
    "3": {"class_type": "KSampler", "inputs": {"seed": 42, "steps": 25, "cfg": 7.5, "sampler_name": "euler",
                                               "positive": ["6", 0], "negative": ["7", 0], "model": ["10", 0]}},
}
COMFY_WORKFLOW = {"nodes": [{"id": 4, "type": "CheckpointLoaderSimple",
                             "widgets_values": ["sd_xl_base_1.0.safetensors"]}], "links": []}


def test_png_with_comfyui_chunks(tmp_path):
    r = check(inspect(_png(tmp_path, {"prompt": json.dumps(COMFY_PROMPT), "workflow": json.dumps(COMFY_WORKFLOW)})))
    assert r.conclusion == "declared_ai" and len(r.generators) == 1
    g = r.generators[0]
    assert g.tool == "ComfyUI" and g.where == "png:prompt + png:workflow"
    assert g.checkpoints == ["sd_xl_base_1.0.safetensors"] and g.extra["loras"] == ["film.safetensors"]
    assert (g.seed, g.steps, g.cfg_scale, g.sampler) == (42, 25, 7.5, "euler")
    assert (g.prompt, g.negative_prompt) == ("a lighthouse at dusk", "text, watermark")
    only_workflow = check(inspect(_png(tmp_path, {"workflow": json.dumps(COMFY_WORKFLOW)}, "w.png")))
    assert only_workflow.generators[0].model == "sd_xl_base_1.0.safetensors"
    assert parse_comfyui_prompt('{"not": "a graph"}', "x") is None


def test_png_with_invokeai_novelai_and_midjourney_chunks(tmp_path):
    invoke = {"positive_prompt": "a red fox", "negative_prompt": "", "steps": 30, "cfg_scale": 7, "seed": 9,
              "scheduler": "euler", "width": 512, "height": 768, "model": {"name": "juggernaut", "hash": "x"},
              "app_version": "4.2.0"}
    g = check(inspect(_png(tmp_path, {"invokeai_metadata": json.dumps(invoke)}, "i.png"))).generators[0]
    assert (g.tool, g.prompt, g.steps, g.seed, g.size, g.model) == ("InvokeAI", "a red fox", 30, 9, "512x768",
                                                                     "juggernaut")
    novel = {"prompt": "1girl, sunset", "steps": 28, "scale": 5.0, "seed": 77, "sampler": "k_euler_ancestral",
             "uc": "lowres", "width": 832, "height": 1216}
    r = check(inspect(_png(tmp_path, {"Software": "NovelAI", "Source": "NovelAI Diffusion V4 4F49EC75",
                                      "Comment": json.dumps(novel), "Title": "AI generated image"}, "n.png")))
    g = r.generators[0]
    assert r.conclusion == "declared_ai" and len(r.generators) == 1
    assert (g.tool, g.seed, g.cfg_scale, g.negative_prompt, g.model) == ("NovelAI", 77, 5.0, "lowres",
                                                                         "NovelAI Diffusion V4 4F49EC75")
    mj = check(inspect(_png(tmp_path, {"Description": "castle in the clouds --ar 16:9 --v 6.1 Job ID: "
                                                      "3f1c2a8e-1b2c-4d5e-8f90-123456789abc"}, "m.png")))
    assert mj.generators[0].tool == "Midjourney" and mj.generators[0].prompt == "castle in the clouds --ar 16:9 --v 6.1"
    caption = check(inspect(_png(tmp_path, {"Description": "holiday photo", "parameters": "just notes"}, "c.png")))
    assert caption.conclusion == "no_claim" and caption.software["png:Description"] == "holiday photo"


@pytest.mark.parametrize(("xmp", "expected"), [
    (_xmp(f"<Iptc4xmpExt:DigitalSourceType>{DST}trainedAlgorithmicMedia</Iptc4xmpExt:DigitalSourceType>"),
     "declared_ai"),
    (_xmp("", f'Iptc4xmpExt:DigitalSourceType="{DST}compositeWithTrainedAlgorithmicMedia"'), "declared_ai_edit"),
    (_xmp(f'<Iptc4xmpExt:DigitalSourceType rdf:resource="{DST}digitalCapture"/>'), "declared_capture"),
    (_xmp("", 'xmp:CreatorTool="Adobe Photoshop 25.0"'), "no_claim"),
])
def test_jpeg_xmp_digital_source_type(tmp_path, xmp, expected):
    r = check(inspect(_jpeg(tmp_path, xmp=xmp)))
    assert r.conclusion == expected and not r.signed and "xmp" in r.checked and not r.errors
    if expected != "no_claim":
        assert "Unsigned" in r.reason and r.source_types[0].where == "XMP Iptc4xmpExt:DigitalSourceType"


def test_a_stripped_manifest_left_pointer_is_no_claim(tmp_path, c2pa_mod):
    xmp = _xmp("", 'xmlns:dcterms="http://purl.org/dc/terms/" '
                   'dcterms:provenance="self#jumbf=/c2pa/urn:uuid:0b3bd0b6-9783-4adc-9609-fb29fff858da"')
    r = check(inspect(_jpeg(tmp_path, xmp=xmp)))
    assert r.conclusion == "no_claim" and not r.c2pa.present and r.software["xmp:provenance"].startswith("self#jumbf")


def test_explicit_ai_edit_is_not_escalated_by_a_generator_name(tmp_path):
    xmp = _xmp("", f'Iptc4xmpExt:DigitalSourceType="{DST}compositeWithTrainedAlgorithmicMedia" '
                   'xmp:CreatorTool="Adobe Firefly"')
    r = check(inspect(_jpeg(tmp_path, xmp=xmp)))
    assert r.conclusion == "declared_ai_edit" and r.generators[0].tool == "Adobe Firefly"


def test_exif_software_and_a1111_user_comment(tmp_path):
    exif = Image.Exif()
    exif[0x0131] = "NovelAI"
    r = check(inspect(_jpeg(tmp_path, "s.jpg", exif=exif.tobytes())))
    assert r.conclusion == "declared_ai" and r.generators[0].where == "exif:Software"
    exif = Image.Exif()
    exif[0x0131] = "Adobe Photoshop 25.0 (Windows)"
    r = check(inspect(_jpeg(tmp_path, "p.jpg", exif=exif.tobytes())))
    assert r.conclusion == "no_claim" and r.software["exif:Software"].startswith("Adobe Photoshop")
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + A1111.encode("utf-16-be")  # what piexif writes for A1111
    r = check(inspect(_jpeg(tmp_path, "a.jpg", exif=exif.tobytes())))
    assert r.conclusion == "declared_ai"
    assert [(g.tool, g.where, g.steps) for g in r.generators] == [("AUTOMATIC1111", "exif:UserComment", 28)]


def test_without_c2pa_python_the_rest_still_works(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "c2pa", None)  # import c2pa now raises ImportError
    r = check(inspect(_png(tmp_path, {"parameters": A1111})))
    assert r.conclusion == "declared_ai" and not r.c2pa.checked and "c2pa" not in r.checked
    assert any("c2pa-python is not installed" in e for e in r.errors)


def test_record_is_strict():
    data = Provenance(source="x").to_dict()
    data["verdict"] = "authentic"
    with pytest.raises(ConfigError, match="verdict"):
        Provenance.from_dict(data)
    with pytest.raises(ConfigError):
        Provenance.from_dict({"source": "x", "conclusion": "authentic"})


# --- the commands ----------------------------------------------------------------------------------------------


def test_provenance_command(tmp_path, capsys):
    png = _png(tmp_path, {"parameters": A1111})
    plain = _jpeg(tmp_path, "plain.jpg")
    assert main(["provenance", str(png), str(plain), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["source"], r["conclusion"]) for r in rows] == [(str(png), "declared_ai"), (str(plain), "no_claim")]
    assert main(["provenance", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{png}: declared_ai" in out and "generator: AUTOMATIC1111" in out and "seed 1234567890" in out
    assert main(["provenance", str(tmp_path / "missing.jpg")]) == 1
    assert "file does not exist" in capsys.readouterr().out


def test_provenance_command_on_the_fixtures(prov_dir, c2pa_mod, capsys):
    files = [str(prov_dir / n) for n in ("C.jpg", "XCA.jpg", "A.jpg")]
    assert main(["provenance", *files, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["conclusion"] for r in rows] == ["no_claim", "invalid_claim", "no_claim"]
    assert "assertion.dataHash.mismatch" in {v["code"] for v in rows[1]["c2pa"]["validation_codes"]}


def test_help_does_not_import_c2pa_or_pillow():
    code = ("import sys; from hubdet.cli import build_parser; build_parser().format_help(); "
            "print(sorted(m for m in ('c2pa', 'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_predict_json_has_provenance_beside_an_unchanged_verdict(tmp_path, capsys):
    from hubdet.models import create_detector

    model = tmp_path / "model"
    create_detector("classifier_tiny.test").save_pretrained(model, card=False)
    pixels = np.random.default_rng(0).integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111)
    tagged, bare = tmp_path / "tagged.png", tmp_path / "bare.png"
    Image.fromarray(pixels).save(tagged, pnginfo=info)
    Image.fromarray(pixels).save(bare)
    assert main(["predict", str(tagged), str(bare), "--model", str(model), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["provenance"]["conclusion"] for r in rows] == ["declared_ai", "no_claim"]
    assert rows[0]["prob_fake"] == rows[1]["prob_fake"] and rows[0]["verdict"] == rows[1]["verdict"]
    assert rows[0]["provenance"]["generators"][0]["tool"] == "AUTOMATIC1111"
