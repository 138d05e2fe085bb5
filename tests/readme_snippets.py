"""Compiles every C++ snippet of README.md, and runs the ones marked to run.

Each ```cpp block must follow a marker line saying how it is built:
    <!-- snippet: main -->      the lines go inside int main() (compiled only)
    <!-- snippet: main run -->  the same, and the program must run and exit 0
    <!-- snippet: global -->    the lines stand at namespace scope (compiled only)
#include lines in a block go to the top of its file.

    readme_snippets.py ROOT CXX ASIO_INCLUDE_DIR [tls]
"""
import pathlib
import re
import subprocess
import sys
import tempfile

root, cxx, asio = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
with_tls = len(sys.argv) > 4 and sys.argv[4] == "tls"
readme = (root / "README.md").read_text(encoding="utf-8")
blocks = re.findall(r"(?:<!-- snippet: ([a-z ]+) -->\n)?```cpp\n(.*?)```", readme, re.S)
if not blocks:
    sys.exit("README.md has no C++ snippets")

failed = 0
with tempfile.TemporaryDirectory() as work:
    for n, (mode, code) in enumerate(blocks, 1):
        if mode not in ("main", "main run", "global"):
            print(f"snippet {n}: no <!-- snippet: main|main run|global --> line before it")
            failed += 1
            continue
        if "Tls" in code and not with_tls:
            print(f"snippet {n}: uses TLS, not built here (no OpenSSL)")
            continue
        lines = code.splitlines()
        includes = [line for line in lines if line.startswith("#include")]
        body = "\n".join(line for line in lines if not line.startswith("#include"))
        source = "\n".join(["#include <mesh/mesh.hpp>", *includes, ""])
        source += body + "\nint main() {}\n" if mode == "global" else f"int main() {{\n{body}\n}}\n"
        path = pathlib.Path(work) / f"snippet{n}.cpp"
        path.write_text(source, encoding="utf-8")
        # Fragments may declare what they do not go on to use.
        flags = ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-Wno-unused-variable", "-Wno-unused-but-set-variable",
                 f"-I{root / 'include'}", f"-I{asio}", "-pthread"]
        if with_tls:
            flags += ["-DMESH_ENABLE_TLS=1", "-lssl", "-lcrypto"]
        program = pathlib.Path(work) / f"snippet{n}"
        built = subprocess.run([cxx, str(path), "-o", str(program), *flags], capture_output=True, text=True)
        if built.returncode != 0:
            print(f"snippet {n} does not compile:\n{source}\n{built.stderr}")
            failed += 1
            continue
        if mode == "main run":
            ran = subprocess.run([str(program)], capture_output=True, text=True, timeout=60)
            if ran.returncode != 0:
                print(f"snippet {n} compiled but exited {ran.returncode}:\n{ran.stdout}{ran.stderr}")
                failed += 1
                continue
        print(f"snippet {n} ({mode}): ok")
sys.exit(1 if failed else 0)
