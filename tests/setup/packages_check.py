#!/usr/bin/env python3
"""Checks that set-up installs everything the build used.

Every header the compiler read (ninja's dependency log), every library the linker was given
(build.ninja) and every path CMake found (CMakeCache.txt) is mapped to the Debian package
that owns it; each such package must be listed in scripts/debian-packages, be a dependency
(Depends or Pre-Depends, recursively; Recommends do not count, set-up installs without them)
of one that is, or be part of every Debian system (Essential, or what those depend on).
The package names in cmake/RmlDependencies.cmake's errors must be listed too. Paths no
package owns are reported; under /usr/local/cuda (the optional CUDA toolkit) they are
expected.

Usage: packages_check.py SOURCE_DIR BUILD_DIR
Exit 0 when all is accounted for, 1 with the paths and packages that are not, 77 (skip)
where dpkg is not there.
"""
import glob
import os
import re
import shutil
import subprocess
import sys

OPTIONAL_PREFIXES = ("/usr/local/cuda",)


def listed_packages(source):
    packages = []
    with open(os.path.join(source, "scripts/debian-packages")) as listing:
        for line in listing:
            line = line.split("#", 1)[0].strip()
            if line:
                packages.append(line.split()[0])
    return packages


def used_paths(source, build):
    """Absolute paths outside the source and build trees that the build read."""
    paths = set()
    deps = subprocess.run(["ninja", "-C", build, "-t", "deps"], capture_output=True, text=True, check=True)
    for line in deps.stdout.splitlines():
        if line.startswith("    /"):
            paths.add(line.strip())
    with open(os.path.join(build, "build.ninja")) as ninja:
        for line in ninja:
            if line.lstrip().startswith("LINK_LIBRARIES ="):
                paths.update(word for word in line.split("=", 1)[1].split() if word.startswith("/"))
    with open(os.path.join(build, "CMakeCache.txt")) as cache:
        for line in cache:
            match = re.match(r"^([A-Za-z0-9_]+):(FILEPATH|PATH)=(/.*)$", line.strip())
            if match and not match.group(1).startswith("CMAKE_"):
                paths.add(match.group(3))
    own = (os.path.realpath(source) + "/", os.path.realpath(build) + "/")
    return {p for p in paths if not os.path.realpath(p).startswith(own) and os.path.exists(p)}


def file_owners():
    """Maps every path a package installed to that package (dpkg's file lists)."""
    owners = {}
    for listing in glob.glob("/var/lib/dpkg/info/*.list"):
        package = os.path.basename(listing)[: -len(".list")].split(":")[0]
        with open(listing, errors="replace") as files:
            for path in files:
                owners.setdefault(path.rstrip("\n"), package)
    return owners


def owner_of(path, owners):
    # Debian 12 merged /usr: a package may list /lib/... for /usr/lib/..., and headers are
    # often reached through symbolic links. Try each spelling of the path and of its target.
    candidates = [path, os.path.normpath(path), os.path.realpath(path)]
    for candidate in list(candidates):
        if candidate.startswith("/usr/"):
            candidates.append(candidate[len("/usr"):])
        else:
            candidates.append("/usr" + candidate)
    for candidate in candidates:
        if candidate in owners:
            return owners[candidate]
    return None


def installed_packages():
    """Installed packages: name -> (dependencies as lists of alternatives, essential?)."""
    packages, provides = {}, {}
    with open("/var/lib/dpkg/status", errors="replace") as status:
        for stanza in status.read().split("\n\n"):
            fields, last = {}, None
            for line in stanza.splitlines():
                if line.startswith(" ") and last:
                    fields[last] += " " + line.strip()
                elif ":" in line:
                    last, value = line.split(":", 1)
                    fields[last] = value.strip()
            if "Package" not in fields or "install ok installed" not in fields.get("Status", ""):
                continue
            name = fields["Package"]
            alternatives = []
            for field in ("Depends", "Pre-Depends"):
                for clause in filter(None, (c.strip() for c in fields.get(field, "").split(","))):
                    alternatives.append([re.split(r"[\s(:]", a.strip())[0] for a in clause.split("|")])
            essential = fields.get("Essential") == "yes" or fields.get("Priority") == "required"
            packages[name] = (alternatives, essential)
            for provided in filter(None, (p.strip() for p in fields.get("Provides", "").split(","))):
                provides.setdefault(re.split(r"[\s(:]", provided)[0], []).append(name)
    return packages, provides


def closure(roots, packages, provides):
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        for real in [name] + provides.get(name, []):
            if real in seen or real not in packages:
                continue
            seen.add(real)
            for alternatives in packages[real][0]:
                # Whichever alternative is installed is the one apt chose.
                todo.extend(alternatives)
    return seen


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    source, build = sys.argv[1], sys.argv[2]
    if not os.path.exists("/var/lib/dpkg/status") or not shutil.which("ninja"):
        print("SKIPPED: not a Debian system with dpkg and ninja")
        return 77
    listed = listed_packages(source)
    problems = []

    with open(os.path.join(source, "cmake/RmlDependencies.cmake")) as cmake:
        for call in re.findall(r'rml_missing_package\("[^"]*"((?:\s+[a-z0-9][a-z0-9.+-]*)+)\)', cmake.read()):
            for package in call.split():
                if package not in listed:
                    problems.append(f"cmake/RmlDependencies.cmake names {package}, not in scripts/debian-packages")

    packages, provides = installed_packages()
    for package in listed:
        if package not in packages:
            problems.append(f"scripts/debian-packages lists {package}, which is not installed here")
    essential = [name for name, (_, is_essential) in packages.items() if is_essential]
    covered = closure(listed, packages, provides) | closure(essential, packages, provides)

    owners = file_owners()
    paths = used_paths(source, build)
    by_package, unowned = {}, []
    for path in sorted(paths):
        package = owner_of(path, owners)
        if package is None:
            if not path.startswith(OPTIONAL_PREFIXES) and not os.path.isdir(path):
                unowned.append(path)
        else:
            by_package.setdefault(package, []).append(path)

    for package, files in sorted(by_package.items()):
        if package not in covered:
            problems.append(f"{package} (not installed by set-up) provides {files[0]}"
                            + (f" and {len(files) - 1} more" if len(files) > 1 else ""))
    for path in unowned:
        problems.append(f"{path} is used by the build but no Debian package owns it")

    print(f"{len(paths)} paths outside the tree, from {len(by_package)} packages; "
          f"set-up's {len(listed)} packages and their dependencies cover {len(covered)} packages")
    for problem in problems:
        print("MISSING:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
