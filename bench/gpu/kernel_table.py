#!/usr/bin/env python3
"""Nsight Compute's per-launch durations (--csv, gpu__time_duration.sum) of rml and of
PyTorch, summed per kernel: where a step's device time goes, side by side.

    kernel_table.py NCU_RML.txt NCU_TORCH.txt
"""
import collections
import csv
import sys

UNITS = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3, "second": 1e6, "s": 1e6}


def kernels(path):
    """{short kernel name: [launches, total µs]} from an ncu --csv log (other lines skipped)."""
    totals = collections.defaultdict(lambda: [0, 0.0])
    with open(path, errors="replace") as log:
        rows = [line for line in log if line.startswith('"')]
    header = None
    for row in csv.reader(rows):
        if "Kernel Name" in row and "Metric Value" in row:
            header = {name: index for index, name in enumerate(row)}
            continue
        if header is None or len(row) < len(header) or row[header["Metric Name"]] != "gpu__time_duration.sum":
            continue
        name = row[header["Kernel Name"]].split("(")[0].replace("void ", "").strip()[:60]
        value = float(row[header["Metric Value"]].replace(",", ""))
        totals[name][0] += 1
        totals[name][1] += value * UNITS.get(row[header["Metric Unit"]], 1.0)
    return totals


def show(label, totals):
    whole = sum(total for _, total in totals.values()) or 1.0
    print(f"{label}: {sum(n for n, _ in totals.values())} launches, {whole:.1f} µs in the window")
    print(f"  {'kernel':60}  {'launches':>8}  {'µs each':>8}  {'share':>6}")
    for name, (count, total) in sorted(totals.items(), key=lambda item: -item[1][1]):
        print(f"  {name:60}  {count:8d}  {total / count:8.2f}  {100 * total / whole:5.1f}%")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    for label, path in (("rml", sys.argv[1]), ("torch", sys.argv[2])):
        totals = kernels(path)
        if not totals:
            print(f"{label}: no kernel timings in {path} (its last lines:)")
            with open(path, errors="replace") as log:
                print("".join(log.readlines()[-8:]))
            continue
        show(label, totals)


if __name__ == "__main__":
    main()
