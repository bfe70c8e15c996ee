"""Asks a Prometheus server (Debian's) what it scraped from rml's /metrics: the target is up,
and the series serving exports are there with sensible values, histograms aggregatable
across replicas with histogram_quantile over sum by (le)."""
import json
import sys
import time
import urllib.parse
import urllib.request

prometheus = sys.argv[1]
# Answers the load generators counted: the series must count at least these.
http_answered, zmq_answered = int(sys.argv[2]), int(sys.argv[3])


def query(expression):
    url = f"http://{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    answer = json.load(urllib.request.urlopen(url, timeout=5))
    assert answer["status"] == "success", answer
    return [float(sample["value"][1]) for sample in answer["data"]["result"]]


checks = {
    'up{job="rml"}': lambda v: v == [1.0],
    'sum(rml_requests_total{outcome="ok"})': lambda v: v and v[0] >= http_answered,
    'sum(rml_http_requests_total{code="200"})': lambda v: v and v[0] >= http_answered,
    'histogram_quantile(0.99, sum by (le) (rml_request_latency_seconds_bucket))': lambda v: v and 0 < v[0] < 10,
    'histogram_quantile(0.5, sum by (le) (rml_compute_latency_seconds_bucket))': lambda v: v and 0 < v[0] < 10,
    'sum(rml_queue_latency_seconds_count)': lambda v: v and v[0] >= 1,
    'sum(rml_batch_rows_count)': lambda v: v and v[0] >= 1,
    'sum(rml_batches_closed_total)': lambda v: v and v[0] >= 1,
    'rml_replicas{lane="main"}': lambda v: v == [1.0],
    'rml_model_version{lane="main"}': lambda v: v and v[0] >= 1,
    'rml_queue_depth{lane="main"}': lambda v: len(v) == 1,
    'sum(rml_cache_misses_total)': lambda v: v and v[0] >= 1,
    'sum(rml_cache_hits_total)': lambda v: v and v[0] >= 1,
    'rml_draining': lambda v: v == [0.0],
}
deadline = time.time() + 60
failing = dict(checks)
while failing and time.time() < deadline:
    for expression, check in list(failing.items()):
        try:
            values = query(expression)
        except OSError:
            values = None
        if values is not None and check(values):
            print(f"ok   {expression} = {values}")
            del failing[expression]
    if failing:
        time.sleep(1)
for expression in failing:
    print(f"FAIL {expression} = {query(expression)}")
sys.exit(1 if failing else 0)
