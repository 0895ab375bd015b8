#!/usr/bin/env python3
"""Issue 12.1's secret check over a whole test run: every log line the gateways wrote while `swift test` ran with
CREDGATE_TEST_LOG=1 (the in-process gateways log at info and write their access logs; spawned ones are collected
by the tests) is searched for every secret the tests configure and for any issued token.

    scripts/secret-scan.py TEST-LOG LOG-DIR [TESTS-DIR]     (LOG-DIR: CREDGATE_TEST_LOG_DIR, the spawned gateways' logs)

The secrets are read from the test sources themselves: every string constant named like a key, password, token or
secret (`static let apiKey = "..."`). Issued tokens are random, so any JWT-shaped string (`eyJ...` `.` `eyJ...`) in
a log line counts as a leak. The test framework's own lines (test names, results) are not log lines and are
skipped. Prints the first findings and `secret-scan: N lines, M secrets, K findings`; exits 1 on any finding.
"""
import pathlib
import re
import sys

log_path = pathlib.Path(sys.argv[1])
log_dir = pathlib.Path(sys.argv[2])
tests = pathlib.Path(sys.argv[3] if len(sys.argv) > 3 else "Tests")
constant = re.compile(r'static let (\w*(?:[Kk]ey|[Pp]ass\w*|[Tt]oken|[Ss]ecret)\w*) = "((?:[^"\\]|\\.)+)"')
secrets = {}
for source in tests.rglob("*.swift"):
    for name, value in constant.findall(source.read_text(encoding="utf-8", errors="replace")):
        value = value.encode().decode("unicode_escape")
        if len(value) >= 8:
            secrets[value] = f"{source.name}: {name}"
jwt = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")
framework = ("◇", "✔", "✘", "↳", "􀟈", "􁁛", "􀢄", "Test Suite", "Test Case", "[", "$ ", "warning:", "Building", "Compiling")
lines = 0
findings = []
files = [log_path] + sorted(log_dir.glob("*.log")) if log_dir.is_dir() else [log_path]
for path in files:
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        stripped = line.lstrip()
        if not stripped or stripped.startswith(framework):
            continue
        lines += 1
        for value, where in secrets.items():
            if value in line:
                findings.append(f"{path.name} line {number}: the secret of {where}")
        if jwt.search(line):
            findings.append(f"{path.name} line {number}: a JWT-shaped token")
for finding in findings[:20]:
    print("  LEAK " + finding)
print(f"secret-scan: {lines} log lines in {len(files)} file(s), {len(secrets)} secrets, {len(findings)} findings")
sys.exit(1 if findings or lines == 0 else 0)
