"""Fails unless README.md's Errors table has a row for every mesh::errc value, and no other."""
import re
import sys

root = sys.argv[1]
header = open(f"{root}/include/mesh/error.hpp").read()
enum = re.search(r"enum class errc \{(.*?)\};", header, re.S).group(1)
values = set(re.findall(r"^\s*([a-z_]+)\s*(?:=\s*\d+\s*)?,", enum, re.M))
readme = open(f"{root}/README.md").read()
section = readme.split("### Errors", 1)[1].split("\n### ", 1)[0]
rows = set(re.findall(r"^\| `([a-z_]+)` \|", section, re.M)) - {"errc"}  # less the header row
missing, extra = sorted(values - rows), sorted(rows - values)
if missing or extra or not values:
    print(f"missing from README: {missing}; not errc values: {extra}")
    sys.exit(1)
print(f"README lists all {len(values)} errc values")
