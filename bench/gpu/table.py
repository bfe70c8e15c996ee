#!/usr/bin/env python3
"""Sets rml's and PyTorch's GPU benchmark lines (bench/gpu/check.sh) side by side."""
import json
import sys


def rows(path):
    result = {}
    with open(path) as lines:
        for line in lines:
            line = line.strip()
            if not line.startswith("{"):
                continue
            row = json.loads(line)
            if "workload" in row:
                result[(row["model"], row["workload"], row["batch"])] = row
    return result


def main():
    rml, torch = rows(sys.argv[1]), rows(sys.argv[2])
    print(f"{'model':6} {'workload':10} {'batch':>5} {'rml':>14} {'torch':>14} {'rml/torch':>10}  torch variant")
    for key in sorted(set(rml) | set(torch)):
        model, workload, batch = key
        mine, theirs = rml.get(key), torch.get(key)
        if workload == "latency":
            unit = "µs p50"
            a = mine and mine["p50_us"]
            b = theirs and theirs["p50_us"]
            ratio = b / a if a and b else None  # speed ratio: their time over ours
        else:
            unit = "samples/s"
            a = mine and mine["samples_per_s"]
            b = theirs and theirs["samples_per_s"]
            ratio = a / b if a and b else None
        show = lambda v: f"{v:14.1f}" if v else f"{'-':>14}"
        shown_ratio = f"{ratio:10.2f}" if ratio else f"{'-':>10}"
        variant = theirs.get("variant", "") if theirs else ""
        print(f"{model:6} {workload:10} {batch:5} {show(a)} {show(b)} {shown_ratio}  {variant} ({unit})")
    print("rml/torch: speed ratio (> 1: rml faster); latency compares medians")


if __name__ == "__main__":
    main()
