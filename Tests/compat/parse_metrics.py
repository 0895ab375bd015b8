#!/usr/bin/env python3
"""Parses a Prometheus text exposition (stdin) with the official client's parser (prometheus-client on PyPI)
and prints one JSON object: {"name{label="value",...}": value} for every sample, labels sorted by name, plus
"#type:<family>": "<type>" for every family. Exits 1 (with the parser's error on stderr) if it does not parse.
Used by Tests/IntegrationTests/MetricsTests.swift."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    text = sys.stdin.read()
    out = {}
    try:
        for family in text_string_to_metric_families(text):
            out["#type:" + family.name] = family.type
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                key = f"{sample.name}{{{labels}}}" if labels else sample.name
                if key in out:
                    print(f"duplicate sample {key}", file=sys.stderr)
                    return 1
                out[key] = sample.value
    except Exception as error:  # the parser raises ValueError (and others) on a malformed exposition
        print(f"parse error: {error}", file=sys.stderr)
        return 1
    json.dump(out, sys.stdout, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
