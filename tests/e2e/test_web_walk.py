"""The cases a new user met in a real browser (issue 15), walked in headless Chromium at phone and desktop sizes:
the family-specific commands, the vLLM 4090 numbers against `vram fit`, the plain-words box, the way forward when
it does not fit, the allowance messages, save after sign-in, revoking a share without an account, the tool's other
pages, keyboard and phone targets, and axe-core on every page."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

expect = pytest.importorskip("playwright.sync_api").expect
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"


def _check(page: Any, base: str, **fields: str) -> None:
    """Fill the calculator and press Check (the form starts from its defaults)."""
    page.goto(base + "/")
    mode = fields.pop("mode", "inference")
    page.check(f"input[name=mode][value={mode}]")
    for name, value in fields.items():
        el = page.locator(f"#{name}")
        if el.evaluate("e => e.tagName") == "SELECT":
            page.select_option(f"#{name}", value)
        elif el.get_attribute("type") == "checkbox":
            el.check()
        else:
            if not el.is_visible():
                page.click("details.more summary")
            page.fill(f"#{name}", value)
            if el.get_attribute("role") == "combobox":
                # a person moves on from the model field: its suggestions close and stay closed, or the list,
                # opened by a search answer that came while the field had focus, would lie over the form
                el.blur()
    page.click("#estimate-btn")
    page.locator("#answer, #error").first.wait_for()


def _commands(page: Any) -> str:
    other = page.locator(".other-commands")
    return (page.text_content("#command") or "") + (other.text_content() or "" if other.count() else "")


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_image_and_speech_models_get_their_own_commands(live_server: str, browser: Any, size: str) -> None:
    page = browser.new_page(viewport=VIEWPORTS[size])
    _check(page, live_server, model="flux.1-dev", gpu="h100-sxm")
    cmd = _commands(page)
    assert "DiffusionPipeline.from_pretrained('black-forest-labs/FLUX.1-dev'" in cmd
    assert "num_inference_steps=28" in cmd and "height=1024" in cmd
    for wrong in ("vllm serve", "AutoModelForCausalLM", ".gguf", "llama-server"):
        assert wrong not in cmd
    assert page.locator("#max-context").count() == 0 and page.locator("#context-chart").count() == 0
    assert "diffusers" in page.inner_text("#result-h")
    _check(page, live_server, model="whisper-large-v3", gpu="rtx-3060-12gb", beams="2")
    cmd = _commands(page)
    assert "pipeline('automatic-speech-recognition', model='openai/whisper-large-v3'" in cmd
    assert "'num_beams': 2" in cmd and "vllm serve" not in cmd and "AutoModelForCausalLM" not in cmd
    assert page.locator("#max-context").count() == 0 and page.locator("#context-chart").count() == 0
    # an option the family does not model is an error in the form's words, not silently ignored
    _check(page, live_server, model="flux.1-dev", gpu="rtx-4090", quant="fp8")
    assert page.inner_text("#error").startswith("Weights: FLUX.1 [dev]")
    page.close()


def test_vllm_on_a_4090_is_sized_by_the_4090(live_server: str, browser: Any) -> None:
    from vram.fitting import fit
    from vram.request import Workload
    from vram.units import GIB

    lib = fit("llama-3-8b", "rtx-4090", Workload.from_flat(context=32768, new_tokens=256, engine="vllm"))
    page = browser.new_page(viewport=VIEWPORTS["desktop"])
    _check(page, live_server, model="llama-3-8b", gpu="rtx-4090", engine="vllm", context="32k")
    assert int(page.get_attribute("#total-gib", "data-bytes") or 0) == lib.per_gpu_bytes
    assert page.inner_text("#usable-gib") == f"{lib.usable_bytes_per_gpu / GIB:,.2f} GiB"
    assert page.inner_text("#max-context") == f"{lib.max_context:,}"
    body = page.inner_text("#result")
    assert "79.65" not in body  # no 80 GB default anywhere: the KV row and the assumptions are the 4090's
    assert f"{lib.estimate.kv_cache_bytes / GIB:,.2f}" in page.inner_text(".breakdown")
    cmd = page.text_content("#command") or ""
    assert cmd.startswith("vllm serve meta-llama/Meta-Llama-3-8B ") and "--max-model-len 8192 " in cmd
    assert page.inner_text("#answer").startswith("Not at 32,768 tokens: Llama 3 8B reads at most 8,192")
    page.close()


QUESTIONS = [
    (
        "qwen 2.5 14b on a 3090 with 8k context",
        {"model": "qwen2.5-14b", "gpu": "rtx-3090", "gpu_count": "1", "context": "8k"},
    ),
    (
        "llama 3.1 8b with vllm on an rtx 4090 x2 at 32,768 tokens",
        {"model": "llama-3.1-8b", "gpu": "rtx-4090", "gpu_count": "2", "engine": "vllm", "context": "32768"},
    ),
    (
        "mistral 7b with ollama on two 4060 ti 16gb",
        {"model": "mistral-7b-v0.3", "gpu": "rtx-4060-ti-16gb", "gpu_count": "2", "engine": "ollama"},
    ),
    (
        "llama 3.1 70b int4 awq on 2×H100 at 32k",
        {"model": "llama-3.1-70b", "gpu": "h100-sxm", "gpu_count": "2", "quant": "awq", "context": "32k"},
    ),
]


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_plain_words_questions(live_server: str, browser: Any, size: str) -> None:
    page = browser.new_page(viewport=VIEWPORTS[size])
    page.goto(live_server + "/")
    for question, want in QUESTIONS:
        page.fill("#question", question)
        page.click("#ask-form button")
        page.locator("#ask-status .chip").first.wait_for()
        for field, value in want.items():
            expect(page.locator(f"#{field}")).to_have_value(value)
        # each question starts from the defaults: what it does not name is back to them
        if "quant" not in want:
            expect(page.locator("#quant")).to_have_value("")
        if "context" not in want:
            expect(page.locator("#context")).to_have_value("8k")
        if "engine" not in want:
            expect(page.locator("#engine")).to_have_value("transformers")
        # the URL names the fields, so the filled form can be bookmarked
        query = parse_qs(urlparse(page.url).query)
        assert {k: query[k][0] for k in want} == want
        assert "Understood" in page.inner_text("#ask-status")
    page.fill("#question", "can my toaster run qwen 2.5 7b")
    page.click("#ask-form button")
    expect(page.locator("#ask-status")).to_contain_text("Not understood: “toaster”")
    # the answer, in one sentence above the result; focus went to the Check button, then to the result
    page.fill("#question", "can I run llama 3 70b on two 4090s at 32k?")
    page.click("#ask-form button")
    page.locator("#ask-status .chip").first.wait_for()
    assert page.evaluate("document.activeElement.id") == "estimate-btn"
    page.keyboard.press("Enter")
    page.locator("#answer").wait_for()
    answer = page.inner_text("#answer")
    assert answer.startswith(
        "Not at 32,768 tokens: Llama 3 70B reads at most 8,192 (prompt + new), and it does not "
        "fit on 2× NVIDIA GeForce RTX 4090 24GB at any context."
    )
    assert "Cheapest change that fits:" in answer
    assert "You asked" in page.inner_text("#result")
    assert page.evaluate("document.activeElement.id") == "result"
    page.close()


def test_ask_works_without_javascript(live_server: str, browser: Any) -> None:
    ctx = browser.new_context(viewport=VIEWPORTS["phone"], java_script_enabled=False)
    page = ctx.new_page()
    page.goto(live_server + "/ask?q=" + "qwen 2.5 14b on a 3090 with 8k context".replace(" ", "+"))
    query = parse_qs(urlparse(page.url).query)
    assert query["model"] == ["qwen2.5-14b"] and query["gpu"] == ["rtx-3090"] and query["context"] == ["8k"]
    assert page.input_value("#model") == "qwen2.5-14b"
    page.click("#estimate-btn")
    page.locator("#answer").wait_for()
    assert page.inner_text("#answer").startswith("No: Qwen2.5 14B needs")  # bf16 weights alone are 27.5 GiB
    ctx.close()


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_training_that_does_not_fit_shows_the_way_forward(live_server: str, browser: Any, size: str) -> None:
    page = browser.new_page(viewport=VIEWPORTS[size])
    _check(page, live_server, mode="train", model="llama-3.1-8b", gpu="rtx-4090", method="lora", context="4k")
    assert page.inner_text("#verdict").startswith("Does not fit")
    way = page.locator("#way-forward li")
    assert way.count() >= 1
    first = way.first.inner_text()
    assert "QLoRA" in first or "checkpointing" in first
    assert "Cheapest change that fits" in page.inner_text("#answer")
    assert "Training setup" in page.inner_text("#result") and "LoraConfig(r=16" in (page.text_content("#command") or "")
    way.first.locator("a").click()
    expect(page.locator("#method")).to_have_value(re.compile("q?lora"))
    page.click("#estimate-btn")
    page.locator("#verdict").wait_for()
    assert not page.inner_text("#verdict").startswith("Does not fit")
    page.close()


def test_allowance_messages(small_allowance_server: str, browser: Any) -> None:
    page = browser.new_page(viewport=VIEWPORTS["phone"])
    _check(page, small_allowance_server, model="llama-3.1-8b", gpu="rtx-4090")  # 250 of 300
    _check(page, small_allowance_server, model="no-such-model-xyz", gpu="rtx-4090")  # 50 left: still a 422
    assert page.inner_text("#error").startswith("Model: no model in the catalog matches 'no-such-model-xyz'")
    _check(page, small_allowance_server, model="llama-3.1-8b", gpu="rtx-4090")
    msg = page.inner_text("#error")
    assert re.search(r"comes back in \d+ h \d+ min \(at \d\d:\d\d UTC\)", msg), msg
    assert not re.search(r"\d{4}-\d\d-\d\dT", msg)  # no raw ISO time
    assert "Sign up free" in msg
    # above the fold on a phone: the box comes before the form
    assert page.locator("#error").bounding_box()["y"] < page.locator("#calc").bounding_box()["y"]
    assert page.evaluate("document.activeElement.id") == "error"
    # signed in, the same box never says "sign up"
    page.goto(small_allowance_server + "/signup")
    page.fill("#email", "allowance@example.com")
    page.fill("#password", "correct horse battery")
    page.click("button.primary")
    for _ in range(2):
        _check(page, small_allowance_server, model="llama-3.1-8b", gpu="rtx-4090")
    msg = page.inner_text("#error")
    assert "Not enough tokens" in msg and "ign up" not in msg and "Buy a token pack" in msg
    page.close()


def test_save_after_sign_in_keeps_the_result(live_server: str, browser: Any) -> None:
    ctx = browser.new_context(viewport=VIEWPORTS["desktop"])
    page = ctx.new_page()
    _check(page, live_server, model="qwen2.5-7b", gpu="l4", engine="vllm", context="16k")
    verdict = page.inner_text("#verdict")
    page.click("#save-btn")
    expect(page.locator("#pending-save")).to_be_visible()
    page.fill("#email", "saver@example.com")
    page.fill("#password", "correct horse battery")
    page.click("#signup-and-save")
    expect(page.locator("#saved-notice")).to_contain_text("Saved to your history")
    assert page.inner_text("#verdict") == verdict
    page.goto(live_server + "/history")
    title = page.inner_text(".items li a")
    assert "qwen2.5-7b on 1× l4 · vllm" in title and ("fits" in title or "tight" in title)
    ctx.close()


def test_an_anonymous_sharer_can_revoke_later(live_server: str, browser: Any) -> None:
    ctx = browser.new_context(viewport=VIEWPORTS["phone"])
    page = ctx.new_page()
    _check(page, live_server, model="llama-3.1-8b", gpu="rtx-4090")
    page.click("#share-btn")
    url = page.input_value("#share-url")
    revoke = page.get_attribute("#revoke-url", "href") or ""
    ctx.close()
    later = browser.new_context(viewport=VIEWPORTS["phone"])  # another day, no cookies, no account
    p2 = later.new_page()
    assert p2.goto(url).status == 200
    p2.goto(revoke)
    p2.click("#revoke-btn")
    expect(p2.locator("h1")).to_have_text("Share revoked")
    assert p2.goto(url).status == 404
    later.close()


def test_the_other_pages(live_server: str, browser: Any) -> None:
    page = browser.new_page(viewport=VIEWPORTS["desktop"])
    page.goto(live_server + "/which")
    page.fill("#model", "llama-3.1-70b")
    page.click("#which-btn")
    page.locator("#which-sentence").wait_for()
    assert page.inner_text("#which-sentence").startswith("Cheapest that runs it:")
    assert page.locator("#which-table tbody tr").count() > 3
    page.goto(live_server + "/compare")
    page.click("#compare-btn")
    page.locator("#compare-table").wait_for()
    assert page.locator("#compare-table tbody tr").count() == 4
    page.goto(live_server + "/plan")
    page.click("#plan-btn")
    page.locator("#plan-sentence").wait_for()
    assert page.inner_text("#plan-sentence").startswith("2 model(s) placed")
    page.fill("#fleet", "pools: [")
    page.click("#plan-btn")
    assert page.inner_text("#error").startswith("Fleet (YAML): not valid YAML")
    page.goto(live_server + "/models?kind=speech")
    assert page.locator("#catalog-table tbody tr").count() == 6
    assert "mit" in page.inner_text("#catalog-table").lower()
    page.click("#fits-link")
    page.select_option("#gpu", "rtx-3090")
    page.click("#fits-form button")
    page.locator("#fits-table").wait_for()
    assert page.locator("#fits-table tbody tr").count() > 10
    page.close()


def test_phone_targets_keyboard_and_labels(live_server: str, browser: Any) -> None:
    page = browser.new_page(viewport=VIEWPORTS["phone"])
    page.goto(live_server + "/")
    for sel in (".top nav a", "input[name=mode]"):
        for box in page.locator(sel).evaluate_all("els => els.map(e => e.getBoundingClientRect().height)"):
            assert box >= 24
    for h in page.locator(".top nav a").evaluate_all("els => els.map(e => e.getBoundingClientRect().height)"):
        assert h >= 44
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORTS["phone"]["width"]
    # "32,768" is a context; a headroom out of range speaks the form's label, in its unit (%)
    _check(page, live_server, model="qwen2.5-7b", gpu="rtx-4090", context="32,768")
    assert page.inner_text("#answer").startswith(("Yes", "Only just"))
    _check(page, live_server, model="qwen2.5-7b", gpu="rtx-4090", headroom="2000")
    assert page.inner_text("#error") == "Headroom (% of weights): at most 1000"
    assert page.evaluate("document.activeElement.id") == "error"
    assert page.get_attribute("#headroom", "aria-invalid") == "true"
    # command blocks take the keyboard focus (they scroll)
    _check(page, live_server, model="llama-3.1-8b", gpu="rtx-4090")
    assert page.get_attribute("pre:has(#command)", "tabindex") == "0"
    page.close()


def _axe(page: Any) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("""async () => (await axe.run(document, {resultTypes: ['violations']})).violations
        .filter(v => v.impact === 'serious' || v.impact === 'critical')
        .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', '))""")
    return list(found)


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_axe_finds_nothing_serious_on_any_page(live_server: str, browser: Any, size: str) -> None:
    if not AXE.exists():
        if os.environ.get("CI"):
            pytest.fail("axe-core is not installed (npm install, as .ci/run does)")
        pytest.skip("axe-core is not installed (npm install)")
    ctx = browser.new_context(viewport=VIEWPORTS[size], bypass_csp=True)  # the CSP would refuse axe's script
    page = ctx.new_page()
    problems: dict[str, list[str]] = {}

    def scan(name: str) -> None:
        if found := _axe(page):
            problems[name] = found

    for path in (
        "/",
        "/which",
        "/compare",
        "/plan",
        "/models",
        "/fits",
        "/fits?gpu=rtx-4090",
        "/explain",
        "/pricing",
        "/costs",
        "/signin",
        "/signup",
        "/ask?q=qwen+2.5+14b+on+a+3090+with+8k+context",
    ):
        page.goto(live_server + path)
        scan(path)
    _check(page, live_server, model="llama-3.1-70b", gpu="rtx-4090", context="32k")  # does not fit: way forward
    scan("result (no)")
    _check(page, live_server, model="qwen2.5-14b", gpu="abc" if False else "rtx-3090")
    page.click("#share-btn")
    page.locator("#revoke-url").wait_for()  # the share page, not the result still unloading (axe needs a document)
    scan("share")
    page.goto(page.get_attribute("#revoke-url", "href") or "")
    scan("revoke")
    page.goto(live_server + "/which")
    page.click("#which-btn")
    page.locator("#which-table").wait_for()
    scan("which result")
    page.goto(live_server + "/signup")
    page.fill("#email", f"axe-{size}@example.com")
    page.fill("#password", "correct horse battery")
    page.click("button.primary")
    _check(page, live_server, model="qwen2.5-7b", gpu="l4")
    page.click("#save-btn")
    page.locator("#saved-notice").wait_for()
    scan("history item")
    for path in ("/history", "/account"):
        page.goto(live_server + path)
        scan(path)
    ctx.close()
    assert problems == {}, json.dumps(problems, indent=1)
