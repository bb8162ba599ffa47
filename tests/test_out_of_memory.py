"""Running out of memory is said where it happens, with its kind: the engine raises OUT_OF_MEMORY (the
cause chained), so nothing downstream reads torch's text; the engine runs again once memory is back.

A real shortage: a child process limits its own address space just above what it uses, then asks
for a 2048x2048 picture; torch's CPU allocator then fails as it does on a full machine."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent("""
    import resource, sys
    from PIL import Image
    from sketchpad.backends.local.img2img import Img2ImgEngine
    from sketchpad.backends.local.models import load_pipeline, pick_device
    from sketchpad.core.errors import SketchpadError
    from sketchpad.core.params import GenerationParams
    from sketchpad.core.sources import resolve_model_source

    engine = Img2ImgEngine(load_pipeline(resolve_model_source(sys.argv[1]), pick_device("cpu")))
    request = GenerationParams("x", steps=1, seed=1, scheduler="euler")
    engine.generate(request, Image.new("RGB", (64, 64), "white"))  # every lazy allocation made once
    in_use = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize")) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (in_use + (256 << 20), resource.RLIM_INFINITY))
    try:
        engine.generate(request, Image.new("RGB", (2048, 2048), "white"))
    except SketchpadError as error:
        print(error.kind.name, type(error.__cause__).__name__, error, sep="|")
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    print(engine.generate(request, Image.new("RGB", (64, 64), "white")).image.size)
""")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads its memory use from Linux's /proc")
def test_out_of_memory_is_raised_with_its_kind_at_the_source(tiny_model_dir):
    done = subprocess.run([sys.executable, "-c", CHILD, str(tiny_model_dir)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    failure, after = done.stdout.strip().splitlines()
    kind, cause, message = failure.split("|")
    assert kind == "OUT_OF_MEMORY" and cause in ("RuntimeError", "OutOfMemoryError", "MemoryError")
    assert message.startswith("out of memory on cpu") and after == "(64, 64)"
