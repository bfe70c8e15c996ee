#!/usr/bin/env python3
"""Prints the sum of one series' samples on rml's /metrics, optionally only those whose
labels contain a filter (e.g. outcome="ok"); 0 when there are none, -1 when /metrics cannot
be read. Usage: metric.py HOST:PORT NAME [LABEL_FILTER]"""
import sys
import urllib.request

address, name = sys.argv[1], sys.argv[2]
label_filter = sys.argv[3] if len(sys.argv) > 3 else ""
try:
    text = urllib.request.urlopen(f"http://{address}/metrics", timeout=5).read().decode()
except OSError:
    print(-1)
    sys.exit(0)
total = 0.0
for line in text.splitlines():
    series, _, value = line.rpartition(" ")
    if series == name or (series.startswith(name + "{") and label_filter in series):
        total += float(value)
print(int(total))
