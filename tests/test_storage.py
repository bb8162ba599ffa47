"""Saving results as PNG with AUTOMATIC1111-style metadata, and reading it back."""

import errno
import os
import sys

import pytest
from PIL import Image, PngImagePlugin

import sketchpad
from sketchpad.core import storage
from sketchpad.core.errors import FailureKind, SketchpadError
from sketchpad.core.params import GenerationParams
from sketchpad.core.registry import SCHEDULERS
from sketchpad.core.storage import (
    ResultInfo,
    format_parameters,
    next_free_path,
    parse_parameters,
    read_png_parameters,
    save_png,
    save_result,
)

VERSION = sketchpad.__version__


def make_info(sampler="euler_a", model="stable-diffusion-v1-5", width=512, height=512, **changes):
    fields = dict(prompt="a cat", negative_prompt="blurry", strength=0.75, steps=20, cfg=7.5, seed=1234)
    fields["scheduler"] = sampler
    fields.update(changes)
    return ResultInfo(GenerationParams(**fields), width, height, model, sampler)


def picture(width=16, height=12):
    image = Image.new("RGB", (width, height))
    image.putdata([(x * 13 % 256, y * 21 % 256, (x + y) % 256) for y in range(height) for x in range(width)])
    return image


def png_bytes_without_metadata(tmp_path):
    path = tmp_path / "plain.png"
    picture().save(path)
    return path


# --- the text format -------------------------------------------------------------------------------------------


def test_exact_text_for_a_known_result():
    assert format_parameters(make_info()) == (
        "a cat\n"
        "Negative prompt: blurry\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 1234, Size: 512x512, "
        f"Model: stable-diffusion-v1-5, Denoising strength: 0.75, Version: sketchpad {VERSION}"
    )


def test_negative_line_left_out_when_empty():
    text = format_parameters(make_info(negative_prompt="", width=640, height=384, sampler="dpmpp_2m_karras"))
    assert text == (
        "a cat\n"
        "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 1234, Size: 640x384, "
        f"Model: stable-diffusion-v1-5, Denoising strength: 0.75, Version: sketchpad {VERSION}"
    )
    assert "Negative prompt" not in text


@pytest.mark.parametrize(
    ("ours", "shown"),
    [("pndm", "PLMS"), ("ddim", "DDIM"), ("euler", "Euler"), ("euler_a", "Euler a"), ("dpmpp_2m", "DPM++ 2M"),
     ("dpmpp_2m_karras", "DPM++ 2M Karras"), ("lcm", "LCM")],
)  # fmt: skip
def test_sampler_display_names_both_ways(ours, shown):
    text = format_parameters(make_info(sampler=ours))
    assert f", Sampler: {shown}, " in text
    assert parse_parameters(text).sampler == ours
    assert parse_parameters(text).params.scheduler == ours


def test_start_at_step_writes_the_equivalent_strength_and_the_step():
    info = make_info(strength=None, start_at_step=5, steps=20)
    last = format_parameters(info).split("\n")[-1]
    assert ", Denoising strength: 0.75, Start at step: 5, Version: " in last
    back = parse_parameters(format_parameters(info))
    assert back.params.start_at_step == 5 and back.params.strength is None
    assert back == info


@pytest.mark.parametrize(("cfg", "shown"), [(7.5, "7.5"), (7, "7.0"), (7.0, "7.0"), (0.52, "0.52"), (12.333, "12.333")])
def test_floats_are_written_plainly_and_read_back_exactly(cfg, shown):
    info = make_info(cfg=cfg, strength=0.333)
    text = format_parameters(info)
    assert f"CFG scale: {shown}," in text and "Denoising strength: 0.333," in text
    assert parse_parameters(text) == info


def test_values_with_commas_colons_or_newlines_are_json_quoted():
    info = make_info(model='my, model: "v2"\nnew')
    text = format_parameters(info)
    assert 'Model: "my, model: \\"v2\\"\\nnew", Denoising strength' in text
    assert len(text.split("\n")) == 3  # the quoted newline does not break the settings line
    assert parse_parameters(text).model_name == info.model_name


def test_unicode_values_are_quoted_without_escaping_them():
    text = format_parameters(make_info(model="modèle: 猫"))
    assert 'Model: "modèle: 猫"' in text


AWKWARD = [
    "a cat, sitting: on a mat",
    'the "best" picture, 8k',
    '"quoted"',
    "line one\nline two\n\nline four",
    "\n leading newline and trailing space \n",
    "Negative prompt: this is part of the prompt",
    "a dog\nNegative prompt: not really the negative",
    "a dog\n   Negative prompt: indented",
    "Steps: 5, Sampler: Euler, CFG scale: 1, Seed: 3",
    "猫 🐈 café – ünïcödé",
    "back\\slash \\n not a newline",
    "tab\there and carriage\r\nreturn",
    "",
]


@pytest.mark.parametrize("prompt", AWKWARD)
@pytest.mark.parametrize("negative", ["", "blurry, ugly", "Negative prompt: again\nmore: lines", " spaced ", "\nfirst"])
def test_round_trip_with_awkward_prompts(prompt, negative):
    info = make_info(prompt=prompt, negative_prompt=negative, model="sd15, custom: v2")
    assert parse_parameters(format_parameters(info)) == info


@pytest.mark.parametrize("sampler", SCHEDULERS)
@pytest.mark.parametrize(
    "changes",
    [dict(strength=0.0), dict(strength=1.0), dict(strength=0.52), dict(strength=None, start_at_step=0),
     dict(strength=None, start_at_step=7, steps=30), dict(strength=None, start_at_step=30, steps=30),
     dict(cfg=0, seed=0, steps=1), dict(cfg=100.0, seed=2**32 - 1, steps=500)],
)  # fmt: skip
def test_round_trip_of_settings(sampler, changes):
    info = make_info(sampler=sampler, width=768, height=1024, model='"odd" name ', **changes)
    assert parse_parameters(format_parameters(info)) == info


@pytest.mark.parametrize("model", ['"odd"', '"odd" name', " leading", "trailing ", "cr\rhere", "", "plain"])
def test_model_names_that_need_care(model):
    info = make_info(model=model)
    text = format_parameters(info)
    assert "\r" not in text  # other tools split lines on it
    assert parse_parameters(text) == info


@pytest.mark.parametrize("prompt", AWKWARD)
@pytest.mark.parametrize("negative", ["", "blurry"])
def test_other_tools_find_the_same_negative_prompt_line(prompt, negative):
    # AUTOMATIC1111 strips each line and takes the first starting "Negative prompt:" as the negative prompt
    lines = format_parameters(make_info(prompt=prompt, negative_prompt=negative)).split("\n")
    marked = [i for i, line in enumerate(lines) if line.strip().startswith("Negative prompt:")]
    assert marked[:1] == ([len(lines) - 2] if negative else [])


def test_preview_method_is_not_stored():
    info = make_info(preview_method="taesd")
    assert "taesd" not in format_parameters(info)
    assert parse_parameters(format_parameters(info)).params.preview_method == GenerationParams("").preview_method


GENUINE_A1111 = (
    "masterpiece, best quality, (a cat:1.2) on a windowsill\n"
    "Negative prompt: lowres, bad anatomy\n"
    "Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 3946624412, Size: 512x768, "
    'Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.6, Lora hashes: "add_detail: '
    '7c6bad76eb54", Version: v1.9.4'
)


def test_parse_genuine_automatic1111_text():
    info = parse_parameters(GENUINE_A1111)
    p = info.params
    assert p.prompt == "masterpiece, best quality, (a cat:1.2) on a windowsill"
    assert p.negative_prompt == "lowres, bad anatomy"
    assert (p.steps, p.cfg, p.seed, p.strength, p.start_at_step) == (30, 7.0, 3946624412, 0.6, None)
    assert (info.width, info.height, info.model_name) == (512, 768, "v1-5-pruned-emaonly")
    assert info.sampler == p.scheduler == "dpmpp_2m_karras"


def test_parse_older_automatic1111_txt2img_text():
    # txt2img: no denoising strength; an older combined sampler name; no negative prompt; trailing newline
    info = parse_parameters("a house\nSteps: 25, Sampler: Euler a, CFG scale: 6.5, Seed: 42, Size: 512x512\n")
    assert info.params.prompt == "a house" and info.params.negative_prompt == ""
    assert info.params.scheduler == "euler_a" and info.params.cfg == 6.5
    assert info.params.strength == GenerationParams("").strength
    assert info.model_name == ""


def test_unknown_sampler_means_model_default():
    info = parse_parameters("x\nSteps: 25, Sampler: UniPC, CFG scale: 6.5, Seed: 42, Size: 512x512")
    assert info.params.scheduler is None
    assert info.sampler == "UniPC"  # kept, so writing it again does not lose it
    assert "Sampler: UniPC," in format_parameters(info)


def test_missing_settings_fall_back_to_defaults():
    info = parse_parameters("a tree\nSize: 320x200, Model: m, Version: x")
    defaults = GenerationParams("")
    assert (info.params.steps, info.params.cfg, info.params.seed) == (defaults.steps, defaults.cfg, defaults.seed)
    assert info.params.scheduler is None
    assert (info.width, info.height) == (320, 200)


@pytest.mark.parametrize(
    "text",
    ["", "   \n", "just a prompt", "a cat\nwith a second line",
     "a cat\nSteps: lots, Sampler: Euler, Seed: 1", "a cat\nSteps: 20, Sampler: Euler, Seed: 1, Size: big",
     "a cat\nSteps: 20, Sampler: Euler, CFG scale: 7x, Seed: 1", "a cat\nSteps: 0, Sampler: Euler, Seed: 1",
     "a cat\nSteps: 20, Sampler: Euler, Seed: 1, Start at step: 21"],
)  # fmt: skip
def test_parse_errors_are_sketchpad_errors(text):
    with pytest.raises(SketchpadError):
        parse_parameters(text)


# --- saving ---------------------------------------------------------------------------------------------------


def test_save_then_read_back(tmp_path):
    info = make_info(prompt="猫, a cat: on a mat\nline two", model="sd, 15")
    image = picture()
    path = save_result(image, info, tmp_path / "out.png")
    assert path == tmp_path / "out.png"
    with Image.open(path) as saved:
        assert saved.text["parameters"] == format_parameters(info)
        assert saved.size == image.size and saved.convert("RGB").tobytes() == image.tobytes()
    assert read_png_parameters(path) == info
    assert os.listdir(tmp_path) == ["out.png"]


def test_latin1_text_uses_a_plain_text_chunk(tmp_path):
    path = save_png(picture(), tmp_path / "a.png", {"parameters": "café\nSteps: 1, Sampler: Euler, Seed: 1"})
    data = path.read_bytes()
    assert b"tEXtparameters\x00caf\xe9" in data and b"iTXt" not in data


def test_save_creates_missing_folders_and_accepts_strings(tmp_path):
    path = save_png(picture(), str(tmp_path / "a" / "b" / "c.png"), {})
    assert path == tmp_path / "a" / "b" / "c.png" and path.is_file()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_saved_file_gets_the_usual_mode_not_the_temp_files(tmp_path):
    mask = os.umask(0o022)
    try:
        path = save_png(picture(), tmp_path / "m.png", {})
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~storage._current_umask()


def test_never_overwrites_an_existing_file(tmp_path):
    path = tmp_path / "taken.png"
    path.write_bytes(b"precious")
    with pytest.raises(SketchpadError, match="already exists"):
        save_result(picture(), make_info(), path)
    assert path.read_bytes() == b"precious"
    assert os.listdir(tmp_path) == ["taken.png"]


def test_file_appearing_during_the_save_is_not_overwritten(tmp_path, monkeypatch):
    path = tmp_path / "race.png"
    real_link = os.link

    def link_after_someone_else(src, dst):
        path.write_bytes(b"theirs")
        return real_link(src, dst)

    monkeypatch.setattr(os, "link", link_after_someone_else)
    with pytest.raises(SketchpadError, match="already exists"):
        save_png(picture(), path, {})
    assert path.read_bytes() == b"theirs"
    assert os.listdir(tmp_path) == ["race.png"]


def test_without_hard_links_it_still_saves_and_still_refuses_to_overwrite(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    path = save_png(picture(), tmp_path / "a.png", {"parameters": "x"})
    with Image.open(path) as saved:
        assert saved.text["parameters"] == "x"
    with pytest.raises(SketchpadError, match="already exists"):
        save_png(Image.new("RGB", (3, 3)), path, {})
    with Image.open(path) as saved:
        assert saved.size == (16, 12)
    assert os.listdir(tmp_path) == ["a.png"]


def test_overwrite_true_replaces(tmp_path):
    path = tmp_path / "again.png"
    path.write_bytes(b"old")
    save_result(picture(), make_info(seed=99), path, overwrite=True)
    assert read_png_parameters(path).params.seed == 99
    assert os.listdir(tmp_path) == ["again.png"]


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), RuntimeError("bug")])
def test_failure_while_writing_leaves_nothing_behind(tmp_path, monkeypatch, error):
    image = picture()

    def half_then_fail(fp, *args, **kwargs):
        fp.write(b"\x89PNG\r\n\x1a\n half a picture")
        raise error

    monkeypatch.setattr(image, "save", half_then_fail)
    with pytest.raises(SketchpadError if isinstance(error, OSError) else RuntimeError):
        save_result(image, make_info(), tmp_path / "out.png")
    assert os.listdir(tmp_path) == []


def test_failure_to_publish_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "keep.png"
    path.write_bytes(b"old")

    def broken_replace(src, dst):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(SketchpadError, match="Input/output error"):
        save_png(picture(), path, {}, overwrite=True)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["keep.png"]


def test_parent_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_bytes(b"x")
    for target in (tmp_path / "file" / "out.png", tmp_path / "file" / "deeper" / "out.png"):
        with pytest.raises(SketchpadError) as caught:
            save_png(picture(), target, {})
        assert "\n" not in str(caught.value)
        assert caught.value.kind is FailureKind.STORAGE and isinstance(caught.value.__cause__, OSError)
    assert os.listdir(tmp_path) == ["file"]


def test_destination_that_is_a_folder_is_a_clear_error(tmp_path):
    (tmp_path / "dir.png").mkdir()
    for overwrite in (False, True):
        with pytest.raises(SketchpadError, match="is a folder"):
            save_png(picture(), tmp_path / "dir.png", {}, overwrite=overwrite)
    assert os.listdir(tmp_path) == ["dir.png"] and os.listdir(tmp_path / "dir.png") == []


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root (or Windows) ignores the mode")
def test_read_only_folder_is_a_clear_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(SketchpadError, match="cannot save"):
            save_png(picture(), folder / "out.png", {})
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o755)


# --- numbering ------------------------------------------------------------------------------------------------


def test_next_free_path_numbering(tmp_path):
    assert next_free_path(tmp_path) == tmp_path / "sketchpad-0001.png"
    assert next_free_path(tmp_path / "not yet made") == tmp_path / "not yet made" / "sketchpad-0001.png"
    for name in ("sketchpad-0001.png", "sketchpad-0003.png", "sketchpad-12.png", "sketchpad-0099.jpg",
                 "other-0500.png", "sketchpad-0400.png.tmp", ".sketchpad-0700.png", "sketchpad-x.png"):  # fmt: skip
        (tmp_path / name).write_bytes(b"")
    assert next_free_path(tmp_path) == tmp_path / "sketchpad-0013.png"  # the gaps 2 and 4..11 are not refilled
    assert next_free_path(tmp_path, "other") == tmp_path / "other-0501.png"
    assert next_free_path(tmp_path, suffix=".jpg") == tmp_path / "sketchpad-0100.jpg"


def test_next_free_path_goes_past_four_digits(tmp_path):
    (tmp_path / "sketchpad-9999.png").write_bytes(b"")
    assert next_free_path(tmp_path) == tmp_path / "sketchpad-10000.png"


def test_next_free_path_with_a_stem_holding_regex_characters(tmp_path):
    (tmp_path / "a.b+c-0002.png").write_bytes(b"")
    (tmp_path / "aXb+c-0009.png").write_bytes(b"")
    assert next_free_path(tmp_path, "a.b+c") == tmp_path / "a.b+c-0003.png"


def test_next_free_path_in_a_file_is_a_sketchpad_error(tmp_path):
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(SketchpadError):
        next_free_path(tmp_path / "file")


# --- reading --------------------------------------------------------------------------------------------------


def test_png_without_metadata_reads_as_none(tmp_path):
    assert read_png_parameters(png_bytes_without_metadata(tmp_path)) is None


def test_other_text_chunks_are_not_parameters(tmp_path):
    path = save_png(picture(), tmp_path / "c.png", {"Comment": "hello"})
    assert read_png_parameters(path) is None


def test_reading_does_not_decode_the_pixels(tmp_path, monkeypatch):
    path = save_result(picture(), make_info(), tmp_path / "a.png")

    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", no_decoding)
    assert read_png_parameters(path) == make_info()


def test_huge_image_is_a_sketchpad_error(tmp_path, monkeypatch):
    path = save_result(picture(64, 64), make_info(), tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(SketchpadError, match="too large"):
        read_png_parameters(path)


def test_non_image_and_missing_and_other_formats_are_sketchpad_errors(tmp_path):
    (tmp_path / "notes.png").write_text("not a picture")
    picture().save(tmp_path / "photo.jpg")
    for name in ("notes.png", "photo.jpg", "missing.png"):
        with pytest.raises(SketchpadError):
            read_png_parameters(tmp_path / name)
    with pytest.raises(SketchpadError):
        read_png_parameters(tmp_path)  # a folder


@pytest.mark.parametrize("keep", [20, 60, -20])
def test_truncated_file_is_a_sketchpad_error(tmp_path, keep):
    path = save_result(picture(), make_info(), tmp_path / "whole.png")
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    with pytest.raises(SketchpadError):
        read_png_parameters(path)


def test_corrupted_pixel_data_is_a_sketchpad_error(tmp_path):
    path = save_result(picture(), make_info(), tmp_path / "bad.png")
    data = bytearray(path.read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 6] ^= 0xFF  # breaks the chunk's checksum
    path.write_bytes(bytes(data))
    with pytest.raises(SketchpadError):
        read_png_parameters(path)


def test_unreadable_parameters_chunk_is_a_sketchpad_error(tmp_path):
    path = save_png(picture(), tmp_path / "odd.png", {"parameters": "just some words"})
    with pytest.raises(SketchpadError, match="odd.png"):
        read_png_parameters(path)


# --- leftovers of interrupted saves ----------------------------------------------------------------------------


def _age(path, seconds):
    old = path.stat().st_mtime - seconds
    os.utime(path, (old, old))


def _dead_pid():
    """A process id that belonged to a process which has ended (a saver killed mid-save)."""
    import subprocess

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temp_files_have_a_recognisable_name_while_saving(tmp_path, monkeypatch):
    seen = []
    real_publish = storage._publish

    def look_then_publish(tmp, path, overwrite):
        seen.extend(os.listdir(tmp_path))
        real_publish(tmp, path, overwrite)

    monkeypatch.setattr(storage, "_publish", look_then_publish)
    save_result(picture(), make_info(), tmp_path / "out.png")
    assert len(seen) == 1 and seen[0].startswith(f".sketchpad-{os.getpid()}-") and seen[0].endswith(".tmp")


def test_clean_leftovers_removes_only_our_abandoned_temp_files(tmp_path):
    killed = tmp_path / f".sketchpad-{_dead_pid()}-abcd1234.tmp"  # its writer was killed mid-save
    stale = tmp_path / f".sketchpad-{os.getpid()}-zzzz9999.tmp"  # a live pid, but untouched for an hour
    being_written = tmp_path / f".sketchpad-{os.getpid()}-live0000.tmp"  # a save in progress right now
    legacy = tmp_path / ".k2j4h6g8.tmp"  # an old version's leftover: the start of one of our PNGs
    save_result(picture(), make_info(), tmp_path / "source.png")
    legacy.write_bytes((tmp_path / "source.png").read_bytes()[:300])
    for path in (killed, stale, being_written):
        path.write_bytes(b"\x89PNG\r\n\x1a\n partial")
    _age(stale, 3600)
    _age(legacy, 3600)
    look_alikes = {
        ".abcdefgh.tmp": b"someone else's temp file",  # the old pattern, but not ours
        ".sketchpad-12-abcd1234.tmp.png": b"x",
        "sketchpad-1-abcd1234.tmp": b"x",  # not hidden
        ".sketchpad-abc-abcd1234.tmp": b"x",
        ".sketchpad-1-abcd123.tmp": b"x",
        "photo.png": b"x",
        ".hidden": b"x",
    }
    for name, data in look_alikes.items():
        (tmp_path / name).write_bytes(data)
        _age(tmp_path / name, 3600)
    (tmp_path / f".sketchpad-{_dead_pid()}-dir00000.tmp").mkdir()  # a folder is never ours to delete

    assert storage.clean_leftovers(tmp_path) == 3
    left = set(os.listdir(tmp_path))
    assert not {killed.name, stale.name, legacy.name} & left
    assert being_written.name in left and "source.png" in left
    assert set(look_alikes) <= left
    assert storage.clean_leftovers(tmp_path) == 0


def test_clean_leftovers_of_a_missing_folder_is_nothing(tmp_path):
    assert storage.clean_leftovers(tmp_path / "not-there") == 0


def test_clean_leftovers_keeps_a_concurrent_save_in_another_process(tmp_path):
    """Another window is writing a big PNG while this one starts: its temp file survives the cleaning."""
    import subprocess

    script = (
        "import sys, time\n"
        "from sketchpad.core import storage\n"
        "fd, path = storage.make_temp_file(sys.argv[1])\n"
        "print(path, flush=True)\n"
        "time.sleep(60)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        temp = writer.stdout.readline().strip()
        assert os.path.basename(temp).startswith(f".sketchpad-{writer.pid}-")
        assert storage.clean_leftovers(tmp_path) == 0 and os.path.exists(temp)
        writer.kill()
        writer.wait()
        assert storage.clean_leftovers(tmp_path) == 1 and not os.path.exists(temp)
    finally:
        writer.kill()
        writer.wait()


# --- masks ---------------------------------------------------------------------------------------------------------
def soft_mask(width=16, height=12, box=(2, 3, 9, 8)):
    from sketchpad.core.params import MaskSpec

    mask = Image.new("L", (width, height), 0)
    mask.paste(255, box)
    mask.putpixel((0, 0), 77)  # a soft value survives too
    return MaskSpec.from_image(mask, blur=6, area="masked", padding=12)


def test_a_masked_result_carries_automatic1111s_mask_fields():
    text = format_parameters(make_info(width=16, height=12, mask=soft_mask()))
    assert text.endswith(", Mask blur: 6, Inpaint area: Only masked, Masked area padding: 12, Version: sketchpad "
                         + VERSION)
    whole = format_parameters(make_info(width=16, height=12, mask=soft_mask().replace(area="whole", blur=0)))
    assert ", Mask blur: 0, Inpaint area: Whole picture, Masked area padding: 12," in whole
    assert "Mask" not in format_parameters(make_info())


def test_auto_is_saved_as_the_area_it_chose():
    small, large = soft_mask(box=(2, 3, 5, 5)).replace(area="auto"), soft_mask(box=(0, 0, 16, 8)).replace(area="auto")
    assert "Inpaint area: Only masked" in format_parameters(make_info(width=16, height=12, mask=small))
    assert "Inpaint area: Whole picture" in format_parameters(make_info(width=16, height=12, mask=large))


def test_a_saved_mask_comes_back_with_its_settings(tmp_path):
    info = make_info(width=16, height=12, mask=soft_mask())
    path = save_result(picture(), info, tmp_path / "masked.png")
    back = read_png_parameters(path)
    assert back == info and back.params.mask.pixels == info.params.mask.pixels
    assert set(storage.read_embedded(path)) == {storage.MASK}  # carried inside, beside the picture
    with Image.open(path) as saved:
        assert saved.convert("RGB").tobytes() == picture().tobytes()


def test_automatic1111s_mask_fields_without_our_mask_chunk_read_as_no_mask(tmp_path):
    text = format_parameters(make_info(width=16, height=12, mask=soft_mask()))
    assert parse_parameters(text).params.mask is None
    path = save_png(picture(), tmp_path / "a1111.png", {"parameters": text})
    assert read_png_parameters(path).params.mask is None


@pytest.mark.parametrize("mask,words", [(Image.new("RGB", (16, 12)), "not L 16x12"),
                                        (Image.new("L", (4, 4), 255), "not L 16x12")])
def test_a_carried_mask_that_does_not_fit_is_a_one_line_error(tmp_path, mask, words):
    text = format_parameters(make_info(width=16, height=12, mask=soft_mask()))
    path = save_png(picture(), tmp_path / "bad.png", {"parameters": text}, embed={storage.MASK: mask})
    with pytest.raises(SketchpadError, match=words) as caught:
        read_png_parameters(path)
    assert "bad.png has settings" in str(caught.value) and "\n" not in str(caught.value)
